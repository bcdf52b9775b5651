//! dr-failover: wiring only; the phases, configuration and assembly live in
//! `shared::failover`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Logging first; a missing or invalid variable fails the cold start, naming it.
    shared::lambda::serve(shared::failover::assemble()).await
}
