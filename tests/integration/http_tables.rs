//! Tables of files named one by one (`files = [...]` in `usagelake.toml`), since plain HTTP cannot
//! list a folder: read from a real HTTP server process on loopback (`http_files.py`, serving a
//! folder of the small lake's files), they answer like the same rows on disk; a missing file, a
//! list over two servers and a file that is not Parquet are named in one line.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::object_storage::one_line_error;
use crate::server_process::free_port;
use crate::support::{csv_rows, files_under, run_ok, small_lake, usagelake};

/// `http_files.py` serving a folder on 127.0.0.1, stopped when dropped.
struct HttpFiles {
    child: Child,
    port: u16,
}

impl HttpFiles {
    fn serve(folder: &Path) -> Self {
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/http_files.py");
        let child = Command::new(crate::python::python())
            .arg(script)
            .arg(folder)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("http_files.py starts");
        // Made before the wait, so that a server that never answers is still stopped by drop.
        let server = Self { child, port };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("http_files.py did not answer on port {port} within 30 s");
    }

    fn url(&self, host: &str, file: &str) -> String {
        format!("http://{host}:{}/{file}", self.port)
    }
}

impl Drop for HttpFiles {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DAYS: [&str; 3] = ["2024-01-10", "2024-01-11", "2024-01-12"];

/// The small lake's events files of [`DAYS`], copied flat into `folder`; their new names.
fn copy_events(folder: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for day in DAYS {
        for (i, file) in files_under(&small_lake().join(format!("events/date={day}")))
            .iter()
            .enumerate()
        {
            let name = format!("events-{day}-{i}.parquet");
            std::fs::copy(file, folder.join(&name)).unwrap();
            names.push(name);
        }
    }
    names
}

/// A lake whose `usagelake.toml` makes `events` the table of `files`.
fn lake_of_files(files: &[String]) -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    let list: Vec<String> = files.iter().map(|f| format!("\"{f}\"")).collect();
    std::fs::write(
        lake.path().join("usagelake.toml"),
        format!(
            "[tables.events]\nfiles = [{}]\ntime_column = \"ts\"\n",
            list.join(", ")
        ),
    )
    .unwrap();
    lake
}

const PER_EVENT: &str = "SELECT event, count(*) AS n, count(DISTINCT user_id) AS users, \
     min(ts) AS first, max(ts) AS last FROM events";

#[test]
fn files_over_http_answer_like_the_same_files_on_disk() {
    let served = tempfile::tempdir().unwrap();
    let names = copy_events(served.path());
    assert!(names.len() >= DAYS.len(), "{names:?}");
    let server = HttpFiles::serve(served.path());

    // The same days read from the lake folder, picked by their partition: another way to the rows.
    let on_disk = run_ok(&[
        "--lake",
        small_lake().to_str().unwrap(),
        "-c",
        &format!(
            "{PER_EVENT} WHERE date BETWEEN DATE '{}' AND DATE '{}' GROUP BY event ORDER BY event",
            DAYS[0], DAYS[2]
        ),
    ]);
    assert!(csv_rows(&on_disk).len() > 3, "{on_disk}");

    let urls: Vec<String> = names
        .iter()
        .map(|name| server.url("127.0.0.1", name))
        .collect();
    let paths: Vec<String> = names
        .iter()
        .map(|name| served.path().join(name).display().to_string())
        .collect();
    for files in [&urls, &paths] {
        let lake = lake_of_files(files);
        let read = run_ok(&[
            "--lake",
            lake.path().to_str().unwrap(),
            "-c",
            &format!("{PER_EVENT} GROUP BY event ORDER BY event"),
        ]);
        assert_eq!(read, on_disk, "{files:?}");
    }
}

#[test]
fn a_bad_list_of_files_is_named_in_one_line() {
    let served = tempfile::tempdir().unwrap();
    let names = copy_events(served.path());
    let server = HttpFiles::serve(served.path());
    let error_of = |files: Vec<String>| {
        let lake = lake_of_files(&files);
        let output = usagelake()
            .args(["--lake", lake.path().to_str().unwrap(), "-c", "SELECT 1"])
            .output()
            .unwrap();
        one_line_error(&output, 1)
    };

    let missing = server.url("127.0.0.1", "events-2024-01-13-0.parquet");
    let error = error_of(vec![server.url("127.0.0.1", &names[0]), missing.clone()]);
    assert!(
        error.contains(&format!("table 'events': '{missing}' does not exist")),
        "{error}"
    );

    let other_host = server.url("localhost", &names[1]);
    let error = error_of(vec![server.url("127.0.0.1", &names[0]), other_host.clone()]);
    assert!(
        error.contains(&format!("'{other_host}' are in different stores")),
        "{error}"
    );

    let not_parquet = server.url("127.0.0.1", "events.csv");
    let error = error_of(vec![not_parquet.clone()]);
    assert!(
        error.contains(&format!("'{not_parquet}' in files is not a .parquet file")),
        "{error}"
    );
}
