//! A small HTTP proxy on loopback between the binary and the S3 server: it counts the requests and
//! answers the ones a test picks with an error status, or stalls them, to show what retries and
//! timeouts do. One thread per connection; it stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Pass it to the server.
    Forward,
    /// Answer with this status and an empty body.
    Status(u16),
    /// Never answer (until the proxy stops, or at most 30 s).
    Stall,
}

/// One request the proxy saw: method, path and query, and what it did.
#[derive(Debug, Clone)]
pub(crate) struct SeenRequest {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) fault: Fault,
}

type Rule = dyn Fn(&str, &str) -> Fault + Send + Sync;

pub(crate) struct FaultProxy {
    port: u16,
    stopped: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    rule: Arc<Mutex<Arc<Rule>>>,
}

/// Longest a stalled request is held.
const MAX_STALL: Duration = Duration::from_secs(30);

impl FaultProxy {
    /// A proxy to `127.0.0.1:upstream` that forwards everything until [`FaultProxy::set_rule`].
    pub(crate) fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let proxy = Self {
            port: listener.local_addr().unwrap().port(),
            stopped: Arc::new(AtomicBool::new(false)),
            seen: Arc::new(Mutex::new(Vec::new())),
            rule: Arc::new(Mutex::new(Arc::new(|_: &str, _: &str| Fault::Forward))),
        };
        let (stopped, seen, rule) = (
            Arc::clone(&proxy.stopped),
            Arc::clone(&proxy.seen),
            Arc::clone(&proxy.rule),
        );
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (stopped, seen, rule) =
                            (Arc::clone(&stopped), Arc::clone(&seen), Arc::clone(&rule));
                        std::thread::spawn(move || {
                            serve(client, upstream, &stopped, &seen, &rule);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        proxy
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Decides each later request's fault from its method and target (path and query).
    pub(crate) fn set_rule(&self, rule: impl Fn(&str, &str) -> Fault + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Arc::new(rule);
    }

    /// The requests seen so far, and forgets them.
    pub(crate) fn take_seen(&self) -> Vec<SeenRequest> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// Serves one request of a client connection, which is then closed (every response says
/// `Connection: close`, so the client opens a new one for its next request).
fn serve(
    mut client: TcpStream,
    upstream: u16,
    stopped: &AtomicBool,
    seen: &Mutex<Vec<SeenRequest>>,
    rule: &Mutex<Arc<Rule>>,
) {
    client.set_nonblocking(false).ok();
    client.set_read_timeout(Some(MAX_STALL)).ok();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == "\r\n";
        head.push(line);
        if end {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let length: usize = head
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let fault = (rule.lock().unwrap().clone())(&method, &target);
    seen.lock().unwrap().push(SeenRequest {
        method: method.clone(),
        target: target.clone(),
        fault,
    });
    match fault {
        Fault::Status(code) => {
            let response = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = client.write_all(response.as_bytes());
        }
        Fault::Stall => {
            let since = Instant::now();
            while !stopped.load(Ordering::Relaxed) && since.elapsed() < MAX_STALL {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Fault::Forward => {
            if let Some(response) = forward(upstream, &head, &body) {
                let _ = client.write_all(&response);
            }
        }
    }
}

/// Sends one request upstream with `Connection: close` and returns the whole response, with
/// `Connection: close` put in its head too, since the upstream connection is not kept.
fn forward(upstream: u16, head: &[String], body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    server.set_read_timeout(Some(MAX_STALL)).ok()?;
    let mut request = String::new();
    for line in head
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && l.as_str() != "\r\n")
    {
        request.push_str(line);
    }
    request.push_str("Connection: close\r\n\r\n");
    server.write_all(request.as_bytes()).ok()?;
    server.write_all(body).ok()?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).ok()?;
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head_text = String::from_utf8_lossy(&response[..head_end]).to_string();
    let mut rewritten: String = head_text
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut out = rewritten.into_bytes();
    out.extend_from_slice(&response[head_end + 4..]);
    Some(out)
}
