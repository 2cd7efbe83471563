//! Bodies stream both ways: a 50 MiB upload and download pass through the proxy while its
//! memory stays flat.

mod support;

use futures_util::StreamExt;
use support::*;

const SIZE: u64 = 50 << 20;

#[tokio::test]
async fn fifty_mib_each_way_with_flat_memory() {
    let up = Upstream::http().await;
    let proxy = Proxy::start(&config_yaml(&up.base_url()), &secrets_yaml());
    let path = format!("/data/v1/projects/{PROJECT}/imports/42/start");
    let c = client();
    // Warm up so the baseline includes the runtime, the pool and the allocator's arenas.
    c.post(proxy.url(&path))
        .body(vec![b'w'; 1 << 20])
        .send()
        .await
        .unwrap();
    let baseline = proxy.memory_kib("VmRSS:");

    let chunks = futures_util::stream::iter(
        (0..SIZE / (1 << 20)).map(|_| Ok::<_, std::io::Error>(vec![b'u'; 1 << 20])),
    );
    let rsp = c
        .post(proxy.url(&path))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    assert_eq!(up.last().body_len, SIZE, "the whole upload arrived");

    let rsp = c
        .post(proxy.url(&path))
        .header("x-test-download", SIZE.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(rsp.status(), 200);
    let mut received = 0u64;
    let mut stream = rsp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        received += chunk.unwrap().len() as u64;
    }
    assert_eq!(received, SIZE, "the whole download arrived");

    let peak = proxy.memory_kib("VmHWM:");
    eprintln!("streaming 2 x 50 MiB: proxy RSS {baseline} KiB before, peak {peak} KiB");
    assert!(
        peak < baseline + 16 * 1024,
        "memory grew from {baseline} KiB to a peak of {peak} KiB while streaming 2 x 50 MiB: something buffers"
    );
}
