//! A running `usagelake serve`: the real binary on a free loopback port, over the sample lake,
//! stopped when the test ends.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{sample_lake, usagelake};

pub(crate) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, as the server printed it once it was listening.
    pub(crate) addr: String,
    /// What the server wrote on stderr after its first line.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `usagelake serve --addr 127.0.0.1:0 --lake data/sample ARGS...` and waits until it
    /// listens.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_on(&sample_lake(), args)
    }

    /// Starts `usagelake serve --addr 127.0.0.1:0 --lake LAKE ARGS...`.
    pub(crate) fn start_on(lake: &Path, args: &[&str]) -> Self {
        let mut child = usagelake()
            .args(["serve", "--addr", "127.0.0.1:0", "--lake"])
            .arg(lake)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("usagelake serve starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let mut first = String::new();
        stderr
            .read_line(&mut first)
            .expect("the server writes a line");
        let addr = first
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in the server's first line: {first:?}"))
            .to_string();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Self { child, addr, log }
    }

    /// The URI a client connects to, `grpc://` or `grpc+tls://`.
    pub(crate) fn uri(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// A line of the server's `/proc` status, in kB (`VmHWM`: peak resident memory).
    pub(crate) fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Sends SIGTERM and waits for the server to exit, at most `limit`.
    pub(crate) fn terminate(mut self, limit: Duration) -> (ExitStatus, String) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread sees the pipe close right after the exit.
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.log.lock().unwrap().clone());
            }
            assert!(
                started.elapsed() < limit,
                "the server did not stop within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
