//! Shared state in PostgreSQL (work in progress for several instances):
//! the harness that later tests use, checked on its own.

#[path = "pg.rs"]
mod pg;

#[tokio::test]
async fn a_test_server_starts_answers_and_stops() {
    let server = pg::Postgres::start();
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client.query_one("SELECT 1 + $1::int4", &[&41i32]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    server.stop();
    assert!(client.query_one("SELECT 1", &[]).await.is_err(), "a stopped server answers nothing");
}
