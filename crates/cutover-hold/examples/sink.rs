//! An HTTP backend for `bench/hold`: answers every call 200 with a short
//! body, after DELAY_MS milliseconds (default 0). Prints its address, then
//! serves until killed.
//!
//! Usage: sink [DELAY_MS]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let delay = std::time::Duration::from_millis(
        std::env::args()
            .nth(1)
            .map_or(Ok(0), |delay| delay.parse())?,
    );
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        format!("{{\"received\": {}}}", body.len())
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    #[allow(clippy::print_stdout)]
    {
        println!("http://{}", listener.local_addr()?);
    }
    axum::serve(listener, app).await?;
    Ok(())
}
