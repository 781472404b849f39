//! The progress bar of `nfc run pcap` (indicatif, on stderr): bytes of the capture read against its size, frames
//! so far, rate and ETA. It appears only when stderr is a terminal, `--no-progress` is not given and the run has
//! lasted a second (short runs never flash a bar; `NFC_PROGRESS_DELAY_MS` changes that delay, for tests); it is
//! cleared before the report is printed, and the collector
//! prints through [`Progress::suspend`] so per-packet output on the same terminal is never garbled. It never
//! writes to stdout.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Frames between two position updates.
const EVERY: u64 = 512;
/// How long a run lasts before the bar appears (default).
const AFTER: Duration = Duration::from_secs(1);

pub struct Progress {
    bar: ProgressBar,
    enabled: bool,
    visible: bool,
    start: Instant,
    after: Duration,
    frames: u64,
}

impl Progress {
    /// `size`: the capture's length in bytes (0 when unknown: a spinner without total). `enabled`: the bar may
    /// be drawn (stderr is a terminal and no `--no-progress`).
    pub fn new(size: u64, enabled: bool) -> Progress {
        Progress::with_delay(size, enabled, AFTER)
    }

    /// [`Progress::new`] with the delay before the bar appears.
    pub fn with_delay(size: u64, enabled: bool, after: Duration) -> Progress {
        let bar = if size > 0 {
            ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden())
        } else {
            ProgressBar::hidden()
        };
        let template = if size > 0 {
            "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {msg} ({bytes_per_sec}, eta {eta})"
        } else {
            "{spinner} {elapsed_precise} {bytes} {msg} ({bytes_per_sec})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress {
            bar,
            enabled,
            visible: false,
            start: Instant::now(),
            after,
            frames: 0,
        }
    }

    /// The bar of a run: drawn only when stderr is a terminal and `--no-progress` was not given, after
    /// `NFC_PROGRESS_DELAY_MS` (default 1000).
    pub fn for_run(size: u64, no_progress: bool) -> Progress {
        use std::io::IsTerminal as _;
        let after = std::env::var("NFC_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(AFTER, Duration::from_millis);
        Progress::with_delay(size, !no_progress && std::io::stderr().is_terminal(), after)
    }

    /// One more frame read; `offset` is how far into the file the reader is.
    pub fn frame(&mut self, offset: u64) {
        self.frames += 1;
        if !self.frames.is_multiple_of(EVERY) {
            return;
        }
        self.show(offset);
    }

    /// `frames` read so far, up to `offset` (readers on other threads).
    pub fn at(&mut self, frames: u64, offset: u64) {
        self.frames = frames;
        self.show(offset);
    }

    fn show(&mut self, offset: u64) {
        self.bar.set_position(offset);
        if !self.enabled {
            return;
        }
        if !self.visible && self.start.elapsed() >= self.after {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.visible = true;
        }
        if self.visible {
            self.bar.set_message(format!("{} frames", self.frames));
        }
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.visible {
            self.bar.suspend(f)
        } else {
            f()
        }
    }

    /// Removes the bar (before the report).
    pub fn finish(&mut self) {
        if self.visible {
            self.bar.finish_and_clear();
            self.visible = false;
        }
    }

    /// Whether the bar is on the terminal now.
    #[cfg(test)]
    pub fn visible(&self) -> bool {
        self.visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_drawn_when_disabled() {
        let mut p = Progress::new(1 << 20, false);
        p.start -= Duration::from_secs(5);
        for i in 0..10 * EVERY {
            p.frame(i * 100);
        }
        assert!(!p.visible());
        assert_eq!(p.bar.position(), (10 * EVERY - 1) * 100);
        assert_eq!(p.suspend(|| 7), 7);
    }

    #[test]
    fn appears_after_the_delay_only() {
        let mut p = Progress::with_delay(1 << 20, true, Duration::from_secs(3600));
        for i in 0..4 * EVERY {
            p.frame(i);
        }
        assert!(!p.visible(), "a short run shows no bar");
        let mut p = Progress::with_delay(1 << 20, true, Duration::ZERO);
        for i in 0..EVERY - 1 {
            p.frame(i);
        }
        assert!(!p.visible(), "positions are taken every {EVERY} frames");
        p.frame(EVERY);
        assert!(p.visible());
        assert_eq!(p.bar.position(), EVERY);
        p.finish();
        assert!(!p.visible());
    }
}
