//! Cases for `BlobStore`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use ota_core::ports::{BlobMeta, BlobStore, ByteRange, ByteStream, StoreError};
use sha2::{Digest, Sha256};

type Store = Arc<dyn BlobStore>;

fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

async fn read_all(s: &Store, key: &str, range: Option<ByteRange>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut st = s.get(key, range).await.unwrap();
    while let Some(c) = st.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

pub async fn put_get_ranges(s: Store) {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = s
        .put("firmware/a.bin", body(&data, 777), 1 << 20)
        .await
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(meta.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    assert_eq!(
        s.size("firmware/a.bin").await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(read_all(&s, "firmware/a.bin", None).await, data);
    let r = ByteRange {
        start: 1000,
        end: 65_535,
    };
    assert_eq!(
        read_all(&s, "firmware/a.bin", Some(r)).await,
        data[1000..=65_535]
    );
    let last = ByteRange {
        start: 99_999,
        end: 99_999,
    };
    assert_eq!(
        read_all(&s, "firmware/a.bin", Some(last)).await,
        [data[99_999]]
    );
    assert_eq!(s.size("firmware/none.bin").await.unwrap(), None);
    assert!(matches!(
        s.get("firmware/none.bin", None).await,
        Err(StoreError::NotFound)
    ));
    s.delete("firmware/a.bin").await.unwrap();
    assert_eq!(s.size("firmware/a.bin").await.unwrap(), None);
    s.delete("firmware/a.bin").await.unwrap();
}

pub async fn limit_leaves_nothing(s: Store) {
    let data = vec![1u8; 10_000];
    let r = s.put("firmware/big.bin", body(&data, 1000), 9_999).await;
    assert_eq!(r, Err(StoreError::TooLarge { limit: 9_999 }));
    assert_eq!(s.size("firmware/big.bin").await.unwrap(), None);
}

pub async fn broken_stream_leaves_nothing(s: Store) {
    let broken: ByteStream = Box::pin(stream::iter(vec![
        Ok(Bytes::from_static(b"abcd")),
        Err(std::io::Error::other("connection reset")),
    ]));
    assert!(s.put("firmware/broken.bin", broken, 1 << 20).await.is_err());
    assert_eq!(s.size("firmware/broken.bin").await.unwrap(), None);
}

fn meta_of(data: &[u8]) -> BlobMeta {
    BlobMeta {
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

pub async fn put_exact_commits_only_the_expected_bytes(s: Store) {
    // One key per size: s3s-fs keeps a deleted object's stored checksum (docs/local-aws.md).
    // 9 MiB takes the S3 adapter's multipart path.
    for len in [5_000usize, 9 * 1024 * 1024] {
        let key = format!("firmware/exact{len}.bin");
        let good: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i * 31 % 251).expect("below 251"))
            .collect();
        let expect = meta_of(&good);
        let mut wrong = good.clone();
        wrong[len / 2] ^= 0xff;

        // Wrong bytes of the right size: reported, not stored.
        let got = s
            .put_exact(&key, body(&wrong, 100_000), &expect)
            .await
            .unwrap();
        assert_eq!(got, meta_of(&wrong));
        assert_eq!(s.size(&key).await.unwrap(), None, "len {len}");

        // The right bytes are stored; a later wrong upload leaves them as they are.
        let got = s
            .put_exact(&key, body(&good, 100_000), &expect)
            .await
            .unwrap();
        assert_eq!(got, expect);
        let got = s
            .put_exact(&key, body(&wrong, 100_000), &expect)
            .await
            .unwrap();
        assert_ne!(got, expect);
        assert_eq!(
            Sha256::digest(read_all(&s, &key, None).await),
            Sha256::digest(&good)
        );

        // More bytes than expected: refused as too large, nothing stored.
        let mut long = good.clone();
        long.push(1);
        let other = format!("firmware/long{len}.bin");
        let r = s.put_exact(&other, body(&long, 100_000), &expect).await;
        assert_eq!(r, Err(StoreError::TooLarge { limit: len as u64 }));
        assert_eq!(s.size(&other).await.unwrap(), None);
    }
}

pub async fn urls_expire_later(s: Store) {
    let ttl = Duration::from_secs(600);
    let before = time::OffsetDateTime::now_utc();
    let get = s.download_url("firmware/a.bin", ttl).await.unwrap();
    assert!(get.expires_at >= before + ttl - Duration::from_secs(1));
    let put = s
        .upload_url("firmware/a.bin", 10, &"ab".repeat(32), ttl)
        .await
        .unwrap();
    assert_eq!(put.method, "PUT");
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k == "content-length" && v == "10")
    );
    assert!(
        put.headers
            .iter()
            .any(|(k, _)| k == "x-amz-checksum-sha256")
    );
}
