//! One file per subcommand: its clap `Args` and its `run`.

pub mod baseline;
pub mod bench;
pub mod demo;
pub mod eval;
pub mod ingest;
pub mod inspect;
pub mod predict;
pub mod preprocess;
pub mod score;
pub mod store_baseline;
pub mod store_info;
pub mod synth;
pub mod train;

/// Options shared by every subcommand.
pub struct Ctx {
    pub quiet: bool,
}

impl Ctx {
    /// A progress bar that is hidden under `--quiet`.
    pub fn progress(&self, len: u64, msg: &str) -> indicatif::ProgressBar {
        if self.quiet {
            return indicatif::ProgressBar::hidden();
        }
        let pb = indicatif::ProgressBar::new(len);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb.set_message(msg.to_string());
        pb
    }
}
