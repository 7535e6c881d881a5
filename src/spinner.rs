//! A spinner with the elapsed time for queries that run long enough to make a user wonder.
//!
//! It appears only after half a second, so quick queries print nothing extra, and only when stderr
//! is a terminal, so pipes, files and tests never see its control characters.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

const DELAY: Duration = Duration::from_millis(500);

/// A running spinner; it is cleared when stopped or dropped.
#[derive(Debug, Default)]
pub struct Spinner {
    task: Option<JoinHandle<()>>,
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Spinner {
    /// Starts a spinner that shows after [`DELAY`] if `enabled` and stderr is a terminal.
    pub fn start(enabled: bool) -> Self {
        if !enabled || !std::io::stderr().is_terminal() {
            return Self::default();
        }
        let bar = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&bar);
        let task = tokio::spawn(async move {
            tokio::time::sleep(DELAY).await;
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                .with_elapsed(DELAY)
                .with_style(
                    ProgressStyle::with_template(
                        "{spinner} running for {elapsed} (Ctrl-C cancels)",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
            spinner.enable_steady_tick(Duration::from_millis(100));
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(spinner);
            }
        });
        Self {
            task: Some(task),
            bar,
        }
    }

    /// Stops and clears the spinner; stopping twice is harmless.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.lock().ok().and_then(|mut slot| slot.take()) {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}
