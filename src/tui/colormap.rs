//! Perceptual colour maps for the spectrogram: viridis and magma (by Stéfan van der Walt and
//! Nathaniel Smith, CC0), as the 9-stop palettes of R's viridisLite, interpolated linearly.

/// A colour map from `[0, 1]` to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMap {
    #[default]
    Viridis,
    Magma,
}

const VIRIDIS: [u32; 9] = [0x440154, 0x472c7a, 0x3b518b, 0x2c718e, 0x21908d, 0x27ad81, 0x5cc863, 0xaadc32, 0xfde725];
const MAGMA: [u32; 9] = [0x000004, 0x1d1147, 0x51127c, 0x822681, 0xb63679, 0xe65164, 0xfb8861, 0xfec287, 0xfcfdbf];

impl ColorMap {
    pub fn name(self) -> &'static str {
        match self {
            ColorMap::Viridis => "viridis",
            ColorMap::Magma => "magma",
        }
    }
    pub fn next(self) -> ColorMap {
        match self {
            ColorMap::Viridis => ColorMap::Magma,
            ColorMap::Magma => ColorMap::Viridis,
        }
    }
    /// The colour at `t` (clamped to `[0, 1]`; NaN maps to 0).
    pub fn rgb(self, t: f32) -> (u8, u8, u8) {
        let stops = match self {
            ColorMap::Viridis => &VIRIDIS,
            ColorMap::Magma => &MAGMA,
        };
        let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
        let x = t * (stops.len() - 1) as f32;
        let i = (x.floor() as usize).min(stops.len() - 2);
        let f = x - i as f32;
        let ch = |c: u32, s: u32| ((c >> s) & 0xff) as f32;
        let mix = |s: u32| (ch(stops[i], s) + (ch(stops[i + 1], s) - ch(stops[i], s)) * f).round() as u8;
        (mix(16), mix(8), mix(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_monotone_lightness() {
        assert_eq!(ColorMap::Viridis.rgb(0.0), (0x44, 0x01, 0x54));
        assert_eq!(ColorMap::Viridis.rgb(1.0), (0xfd, 0xe7, 0x25));
        assert_eq!(ColorMap::Magma.rgb(2.0), (0xfc, 0xfd, 0xbf));
        assert_eq!(ColorMap::Magma.rgb(f32::NAN), (0, 0, 4));
        // Perceptual maps get lighter along the scale (approximate luma).
        for m in [ColorMap::Viridis, ColorMap::Magma] {
            let luma = |t: f32| {
                let (r, g, b) = m.rgb(t);
                0.2126 * r as f32 + 0.7152 * g as f32 + 0.0722 * b as f32
            };
            for k in 0..20 {
                assert!(luma(k as f32 / 20.0) < luma((k + 1) as f32 / 20.0), "{m:?} at {k}");
            }
        }
    }
}
