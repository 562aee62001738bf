//! The machine's PostgreSQL for the tests that need it (`WASMFN_TEST_POSTGRES_URL`, default
//! 127.0.0.1:5432, database `test`): connections, and a database of a test's own.

/// The test server's URL.
pub fn url() -> String {
    std::env::var("WASMFN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A connection to `url`, driven in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL must run for this test: {error}"));
    tokio::spawn(connection);
    client
}

/// A new, empty database `<prefix>_<random>`, dropped (with its connections) when dropped.
pub struct Scratch {
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl Scratch {
    pub async fn new(prefix: &str) -> Scratch {
        let admin = connect(&url()).await;
        let name = format!("{prefix}_{}", rand::random::<u32>());
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let mut fresh = url::Url::parse(&url()).unwrap();
        fresh.set_path(&name);
        Scratch { name, url: fresh.to_string() }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A connection of its own (the test's runtime may be shutting down).
        let (url, name) = (url(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok((client, connection)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(connection);
                        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = client.batch_execute(&drop).await;
                    }
                });
            }
        });
        let _ = dropped.join();
    }
}
