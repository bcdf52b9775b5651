//! credential-rotation: wiring only; the steps, configuration and assembly live in
//! `shared::rotation`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Logging first; a missing or invalid variable fails the cold start, naming it.
    shared::lambda::serve(shared::rotation::assemble()).await
}
