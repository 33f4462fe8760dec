//! Signal processing shared by the UI and the jobs (no terminal, no I/O).

pub mod spectrogram;
