//! What the tests' storage servers share (moto for S3, fake-gcs-server for GCS, Azurite for
//! Azure): a process on a free loopback port, waited for until it answers and killed when dropped,
//! plain HTTP requests to it, and copying a lake into a store and reading objects back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use futures::TryStreamExt;

/// A free TCP port on loopback (the OS picks it; it is released for the server to take).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process listening on `127.0.0.1:port`; killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    port: u16,
    runtime: tokio::runtime::Runtime,
}

impl ServerProcess {
    /// Spawns `command` (already told to listen on `port`) and waits, at most 30 s, until a
    /// `GET /` gets any answer.
    pub(crate) fn start(mut command: Command, port: u16) -> Self {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let server = Self {
            child,
            port,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        for _ in 0..300 {
            if server.http("GET", "/", "", b"").is_some() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{program} did not answer on port {port} within 30 s");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain (unsigned) HTTP request with extra header lines, each ending in `\r\n`; the
    /// status line, or `None` when the server does not answer.
    pub(crate) fn http(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.lines().next().map(str::to_string)
    }

    /// Uploads every file under `dir` to `store` under `prefix`; returns how many.
    pub(crate) fn upload_folder(&self, store: &dyn ObjectStore, dir: &Path, prefix: &str) -> usize {
        let files = crate::support::files_under(dir);
        self.runtime.block_on(async {
            for file in &files {
                let relative = file.strip_prefix(dir).unwrap().to_str().unwrap();
                let key = ObjectPath::from(format!("{prefix}/{relative}"));
                store
                    .put(&key, PutPayload::from(std::fs::read(file).unwrap()))
                    .await
                    .unwrap();
            }
        });
        files.len()
    }

    /// The keys under `prefix` in `store`, sorted.
    pub(crate) fn list(&self, store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.runtime.block_on(async {
            store
                .list(Some(&ObjectPath::from(prefix)))
                .map_ok(|meta| meta.location.to_string())
                .try_collect()
                .await
                .unwrap()
        });
        keys.sort();
        keys
    }

    /// The bytes of one object.
    pub(crate) fn get(&self, store: &dyn ObjectStore, key: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            store
                .get(&ObjectPath::from(key))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec()
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
