//! A real S3-compatible server for the tests: moto's server mode (`moto[server]` from PyPI), one
//! process per test on a free loopback port, stopped when the test's [`S3Server`] is dropped.
//! `.ci/install-test-clients` installs it into a virtual environment outside the clone the first time.

use std::path::{Path, PathBuf};
use std::process::Command;

use object_store::aws::{AmazonS3, AmazonS3Builder};

use crate::server_process::{ServerProcess, free_port};

/// Credentials moto accepts without checking them.
pub(crate) const ACCESS_KEY: &str = "usagelake-test";
pub(crate) const SECRET_KEY: &str = "usagelake-test-secret";

/// The `moto_server` program of the tests' venv.
fn moto_server() -> PathBuf {
    crate::python::python().with_file_name("moto_server")
}

/// A moto S3 server process on 127.0.0.1.
pub(crate) struct S3Server {
    process: ServerProcess,
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
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Self {
            process: ServerProcess::start(command, port),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.process.port()
    }

    /// The server's URL, for `AWS_ENDPOINT`.
    pub(crate) fn endpoint(&self) -> String {
        self.process.endpoint()
    }

    /// One plain HTTP request (moto takes unsigned ones); the status line.
    fn http(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> String {
        self.process
            .http(method, path, headers, body)
            .expect("moto answers")
    }

    pub(crate) fn create_bucket(&self, bucket: &str) {
        let status = self.http("PUT", &format!("/{bucket}"), "", b"");
        assert!(
            status.contains(" 200 "),
            "creating bucket {bucket}: {status}"
        );
    }

    /// Uploads `body` as an object anyone may read, so that plain HTTP GETs of
    /// `http://127.0.0.1:PORT/BUCKET/KEY` get it.
    pub(crate) fn put_public(&self, bucket: &str, key: &str, body: &[u8]) {
        let status = self.http(
            "PUT",
            &format!("/{bucket}/{key}"),
            "x-amz-acl: public-read\r\n",
            body,
        );
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
        self.process.upload_folder(&self.store(bucket), dir, prefix)
    }

    /// The keys under `prefix` in `bucket`, sorted.
    pub(crate) fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.process.list(&self.store(bucket), prefix)
    }

    /// The bytes of one object.
    pub(crate) fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.process.get(&self.store(bucket), key)
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
