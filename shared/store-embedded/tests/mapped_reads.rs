//! Objects are read through a memory map: a read keeps the object it started with whatever
//! happens to the key meanwhile, and the edge cases of mapping (an empty file) still read.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobStore, ByteRange, ByteStream};
use ota_store_embedded::LocalBlobs;

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(4096)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn drain(mut s: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn store(dir: &std::path::Path) -> LocalBlobs {
    LocalBlobs::open(
        dir,
        "http://127.0.0.1:1",
        CapabilitySigner::from_secret(b"t"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_read_keeps_its_object_when_the_key_is_replaced_or_deleted_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let old: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    s.put("firmware/r.bin", body(&old), 1 << 20).await.unwrap();
    let whole = s.get("firmware/r.bin", None).await.unwrap();
    let tail = ByteRange {
        start: 299_000,
        end: 299_999,
    };
    let ranged = s.get("firmware/r.bin", Some(tail)).await.unwrap();

    s.put("firmware/r.bin", body(b"new"), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        drain(whole).await,
        old,
        "the read in flight saw the old object"
    );
    assert_eq!(
        drain(s.get("firmware/r.bin", None).await.unwrap()).await,
        b"new",
        "a new read sees the new one"
    );
    let kept = s.get("firmware/r.bin", None).await.unwrap();
    s.delete("firmware/r.bin").await.unwrap();
    assert_eq!(drain(ranged).await, old[299_000..]);
    assert_eq!(
        drain(kept).await,
        b"new",
        "a delete does not cut a read short"
    );
}

#[tokio::test]
async fn an_empty_object_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.put("firmware/e.bin", body(b""), 10).await.unwrap();
    assert_eq!(s.size("firmware/e.bin").await.unwrap(), Some(0));
    assert!(
        drain(s.get("firmware/e.bin", None).await.unwrap())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_kept_map_is_forgotten_when_its_key_is_replaced_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.put("firmware/k.bin", body(&[7; 1000]), 1 << 20)
        .await
        .unwrap();
    // Read twice: the second read comes from the kept map.
    assert_eq!(s.size("firmware/k.bin").await.unwrap(), Some(1000));
    assert_eq!(
        drain(s.get("firmware/k.bin", None).await.unwrap()).await,
        [7; 1000]
    );

    s.put("firmware/k.bin", body(&[9; 10]), 1 << 20)
        .await
        .unwrap();
    assert_eq!(s.size("firmware/k.bin").await.unwrap(), Some(10));
    let range = ByteRange { start: 2, end: 4 };
    assert_eq!(
        drain(s.get("firmware/k.bin", Some(range)).await.unwrap()).await,
        [9; 3]
    );

    s.delete("firmware/k.bin").await.unwrap();
    assert_eq!(s.size("firmware/k.bin").await.unwrap(), None);
    assert!(s.get("firmware/k.bin", None).await.is_err());
}
