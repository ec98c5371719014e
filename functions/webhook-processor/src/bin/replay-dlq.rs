//! `replay-dlq <dlq-url> <queue-url> [max]`: moves webhook pointers from the dead-letter queue
//! back to the FIFO queue (after fixing what made them fail), keeping their message groups. Uses
//! the standard AWS SDK configuration (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dlq), Some(queue)) = (args.first(), args.get(1)) else {
        eprintln!("usage: replay-dlq <dlq-url> <queue-url> [max, default 1000]");
        std::process::exit(2);
    };
    let max = args.get(2).map(|m| m.parse()).transpose()?.unwrap_or(1000);
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_sqs::Client::new(&config);
    let moved = tollgate::queue::sqs::replay_dead_letters(&client, dlq, queue, max).await?;
    println!("replayed {moved} message(s) from {dlq} to {queue}");
    Ok(())
}
