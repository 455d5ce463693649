//! The zero-configuration fallback: with PostgreSQL's server binaries installed, Hashar can
//! start its own cluster in a folder, create its database there and migrate it.

use std::str::FromStr;

use hashar::db;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};

#[tokio::test]
async fn a_private_cluster_starts_creates_the_database_and_stops() {
    assert!(
        db::server_binaries_installed(),
        "PostgreSQL's server binaries (initdb, pg_ctl) are needed for this test"
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let dir = std::env::temp_dir().join(format!("hashar-private-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    db::start_private_cluster(&dir, port)
        .await
        .expect("cluster starts");
    // starting it again while it runs is fine
    db::start_private_cluster(&dir, port)
        .await
        .expect("second start is a no-op");
    let options = PgConnectOptions::from_str(&format!(
        "postgres://postgres@127.0.0.1:{port}/hashar_private"
    ))
    .expect("url");
    db::ensure_database(&options)
        .await
        .expect("database created");
    db::ensure_database(&options)
        .await
        .expect("and found the second time");
    let pool = sqlx::PgPool::connect_with(options.clone())
        .await
        .expect("connects");
    hashar::MIGRATOR.run(&pool).await.expect("migrates");
    assert!(db::migrations_applied(&pool).await.expect("query"));
    pool.close().await;
    let mut conn = options.connect().await.expect("connects");
    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    conn.close().await.ok();
    db::stop_private_cluster(&dir).await.expect("cluster stops");
    std::fs::remove_dir_all(&dir).ok();
}
