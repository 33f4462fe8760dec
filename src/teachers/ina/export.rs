//! Writing a segmentation the way users compare it: INA's own CSV (`seg2csv`: tab-separated `labels start stop`,
//! seconds) and an Audacity label track (`start<TAB>end<TAB>label`).

use std::io::Write;

use super::Segment;

/// INA's CSV: a header `labels\tstart\tstop`, then one line per segment (seconds with 2 decimals: segments are on
/// a 20 ms grid).
pub fn write_segments_csv<W: Write>(mut w: W, segments: &[Segment]) -> std::io::Result<()> {
    writeln!(w, "labels\tstart\tstop")?;
    for s in segments {
        writeln!(w, "{}\t{:.2}\t{:.2}", s.label.as_str(), s.start_sec(), s.end_sec())?;
    }
    Ok(())
}

/// An Audacity label track (File → Import → Labels): `start\tend\tlabel` per segment.
pub fn write_audacity_labels<W: Write>(mut w: W, segments: &[Segment]) -> std::io::Result<()> {
    for s in segments {
        writeln!(w, "{:.6}\t{:.6}\t{}", s.start_sec(), s.end_sec(), s.label.as_str())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Label;
    use super::*;

    #[test]
    fn csv_and_labels() {
        let segs = [
            Segment { label: Label::Music, start: 0, stop: 1124 },
            Segment { label: Label::NoEnergy, start: 1124, stop: 1454 },
        ];
        let mut csv = Vec::new();
        write_segments_csv(&mut csv, &segs).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "labels\tstart\tstop\nmusic\t0.00\t22.48\nnoEnergy\t22.48\t29.08\n"
        );
        let mut lab = Vec::new();
        write_audacity_labels(&mut lab, &segs).unwrap();
        assert_eq!(String::from_utf8(lab).unwrap(), "0.000000\t22.480000\tmusic\n22.480000\t29.080000\tnoEnergy\n");
    }
}
