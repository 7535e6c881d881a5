//! A real S3-compatible server for the tests: moto's server mode (`moto[server]` from PyPI), one
//! process per test on a free loopback port, stopped when the test's [`S3Server`] is dropped.
//! `.ci/install-test-clients` installs it into a virtual environment outside the clone the first time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};

/// Credentials moto accepts without checking them.
pub(crate) const ACCESS_KEY: &str = "usagelake-test";
pub(crate) const SECRET_KEY: &str = "usagelake-test-secret";

/// The `moto_server` program of the tests' venv.
fn moto_server() -> PathBuf {
    crate::python::python().with_file_name("moto_server")
}

/// A free TCP port on loopback (the OS picks it; it is released for the server to take).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto S3 server process on 127.0.0.1.
pub(crate) struct S3Server {
    child: Child,
    port: u16,
    runtime: tokio::runtime::Runtime,
}

impl S3Server {
    /// Starts a server that takes any credentials, and waits (at most 30 s) until it answers.
    pub(crate) fn start() -> Self {
        Self::spawn(false)
    }

    /// Starts a server that checks every request's credentials against its IAM users (it has
    /// none, so every key is refused).
    pub(crate) fn start_checking_credentials() -> Self {
        Self::spawn(true)
    }

    fn spawn(check_credentials: bool) -> Self {
        let port = free_port();
        let mut command = Command::new(moto_server());
        if check_credentials {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let server = Self {
            child,
            port,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        for _ in 0..300 {
            if server.http("GET", "/", b"").is_some() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not answer on port {port} within 30 s");
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's URL, for `AWS_ENDPOINT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One plain HTTP request (moto takes unsigned ones); the status line, or `None` when the
    /// server does not answer.
    fn http(&self, method: &str, path: &str, body: &[u8]) -> Option<String> {
        self.http_with_headers(method, path, "", body)
    }

    /// [`S3Server::http`] with extra header lines, each ending in `\r\n`.
    fn http_with_headers(
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

    pub(crate) fn create_bucket(&self, bucket: &str) {
        let status = self
            .http("PUT", &format!("/{bucket}"), b"")
            .expect("moto answers");
        assert!(
            status.contains(" 200 "),
            "creating bucket {bucket}: {status}"
        );
    }

    /// Uploads `body` as an object anyone may read, so that plain HTTP GETs of
    /// `http://127.0.0.1:PORT/BUCKET/KEY` get it.
    pub(crate) fn put_public(&self, bucket: &str, key: &str, body: &[u8]) {
        let status = self
            .http_with_headers(
                "PUT",
                &format!("/{bucket}/{key}"),
                "x-amz-acl: public-read\r\n",
                body,
            )
            .expect("moto answers");
        assert!(status.contains(" 200 "), "uploading {key}: {status}");
    }

    fn store(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .unwrap()
    }

    /// Uploads every file under `dir` to `bucket` under `prefix`; returns how many.
    pub(crate) fn upload_folder(&self, dir: &Path, bucket: &str, prefix: &str) -> usize {
        let store = self.store(bucket);
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

    /// The keys under `prefix` in `bucket`, sorted.
    pub(crate) fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let store = self.store(bucket);
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
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let store = self.store(bucket);
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

    /// `command` with the environment that points the S3 store at `endpoint` (this server, or a
    /// proxy in front of it).
    pub(crate) fn configure(command: &mut Command, endpoint: &str) {
        for (key, _) in std::env::vars() {
            if key.starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        command
            .env("AWS_ENDPOINT", endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
