//! One suite for every object_store backend we can run here: memory and the local filesystem.

use super::backend::ObjectBackend;
use super::*;

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn suite(objects: Objects) {
    let info = objects
        .put(
            "a",
            "reports/2026/11.csv",
            Bytes::from_static(b"x,y\n1,2\n"),
            Some("text/csv".into()),
            meta(&[("owner", "ada")]),
        )
        .await
        .unwrap();
    assert_eq!((info.size, info.content_type.as_str()), (8, "text/csv"));
    let (got, body) = objects.get("a", "reports/2026/11.csv").await.unwrap();
    assert_eq!(&body[..], b"x,y\n1,2\n");
    assert_eq!(got.metadata, meta(&[("owner", "ada")]));
    assert_eq!(got.content_type, "text/csv");
    assert!(got.last_modified > 1_700_000_000_000, "{got:?}");
    let head = objects.head("a", "reports/2026/11.csv").await.unwrap();
    assert_eq!((head.size, head.key.as_str()), (8, "reports/2026/11.csv"));

    // Default content type, overwrite.
    objects.put("a", "blob", Bytes::from_static(b"1"), None, BTreeMap::new()).await.unwrap();
    objects.put("a", "blob", Bytes::from_static(b"22"), None, BTreeMap::new()).await.unwrap();
    let (info, body) = objects.get("a", "blob").await.unwrap();
    assert_eq!((&body[..], info.content_type.as_str()), (&b"22"[..], DEFAULT_CONTENT_TYPE));

    // Listing: key order, prefixes that are not directories, pages.
    for name in ["reports/2026/12.csv", "reports/2025/01.csv", "rep.txt", "with space.txt"] {
        objects.put("a", name, Bytes::from_static(b"."), None, BTreeMap::new()).await.unwrap();
    }
    let keys =
        |listing: &Listing| listing.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
    let all = objects.list("a", "", None, 100).await.unwrap();
    assert_eq!(
        keys(&all),
        [
            "blob",
            "rep.txt",
            "reports/2025/01.csv",
            "reports/2026/11.csv",
            "reports/2026/12.csv",
            "with space.txt"
        ]
    );
    assert_eq!(all.next_start_after, None);
    let rep = objects.list("a", "rep", None, 100).await.unwrap();
    assert_eq!(keys(&rep).len(), 4);
    let page1 = objects.list("a", "reports/", None, 2).await.unwrap();
    assert_eq!(keys(&page1), ["reports/2025/01.csv", "reports/2026/11.csv"]);
    let after = page1.next_start_after.clone().expect("a next page");
    let page2 = objects.list("a", "reports/", Some(&after), 2).await.unwrap();
    assert_eq!(keys(&page2), ["reports/2026/12.csv"]);
    assert_eq!(page2.next_start_after, None);
    let in_dir = objects.list("a", "reports/2026/1", None, 10).await.unwrap();
    assert_eq!(keys(&in_dir), ["reports/2026/11.csv", "reports/2026/12.csv"]);
    assert_eq!(in_dir.objects[0].content_type, "text/csv", "listing carries the sidecar");

    // Isolation: space b sees nothing of space a.
    assert!(objects.list("b", "", None, 100).await.unwrap().objects.is_empty());
    assert!(matches!(objects.get("b", "blob").await, Err(ObjectError::NotFound(_))));
    assert!(!objects.delete("b", "blob").await.unwrap());

    // Bad keys and sizes are refused before storage.
    for key in ["../a/blob", "/etc/passwd", "a\0b", "x/../../y"] {
        assert!(matches!(objects.get("b", key).await, Err(ObjectError::InvalidKey(_))), "{key:?}");
        let put = objects.put("b", key, Bytes::new(), None, BTreeMap::new()).await;
        assert!(matches!(put, Err(ObjectError::InvalidKey(_))), "{key:?}");
    }
    let big = Bytes::from(vec![0u8; objects.limits().max_object_bytes + 1]);
    assert!(matches!(
        objects.put("a", "big", big, None, BTreeMap::new()).await,
        Err(ObjectError::TooLarge(_))
    ));
    let bulky = meta(&[("k", &"v".repeat(4096))]);
    assert!(matches!(
        objects.put("a", "m", Bytes::new(), None, bulky).await,
        Err(ObjectError::TooLarge(_))
    ));

    // Delete: true once, then false; gone from get and list.
    assert!(objects.delete("a", "blob").await.unwrap());
    assert!(!objects.delete("a", "blob").await.unwrap());
    let missing = objects.get("a", "blob").await.unwrap_err();
    assert_eq!(missing, ObjectError::NotFound("no object with key \"blob\"".into()));
    assert!(matches!(objects.head("a", "blob").await, Err(ObjectError::NotFound(_))));
    assert_eq!(objects.list("a", "", None, 100).await.unwrap().objects.len(), 5);
}

fn limits() -> ObjectLimits {
    ObjectLimits { max_object_bytes: 1 << 16, ..ObjectLimits::default() }
}

#[tokio::test]
async fn memory_backend_passes_the_suite() {
    let store = ObjectBackend::Memory.build().unwrap();
    suite(Objects::new(store, limits())).await;
}

#[tokio::test]
async fn local_filesystem_backend_passes_the_suite_and_stays_in_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let backend = ObjectBackend::Local(root.clone());
    suite(Objects::new(backend.build().unwrap(), limits()).with_layout(backend.layout())).await;
    assert!(root.join("spaces/a/objects/reports/2026/11.csv!").is_file());
    let outside: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["objects"], "nothing written outside the store's directory");
}

/// Keys the filesystem itself could not hold as they are: a part over its 255-byte name limit,
/// and a key that is also another key's directory.
async fn keys_the_filesystem_cannot_hold_as_they_are(objects: Objects) {
    let long = format!("long/{}/end.txt", "p".repeat(300));
    let longer_leaf = format!("long/{}", "ü".repeat(400));
    let keys = ["a", "a/b", "a/b/c", &long, &longer_leaf, "b!/c+=d"];
    for key in keys {
        objects.put("s", key, Bytes::from(key.to_string()), None, BTreeMap::new()).await.unwrap();
    }
    for key in keys {
        let (info, body) = objects.get("s", key).await.unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!((info.key.as_str(), &body[..]), (key, key.as_bytes()));
    }
    let listed = objects.list("s", "", None, 100).await.unwrap();
    let mut sorted = keys.map(str::to_string).to_vec();
    sorted.sort();
    assert_eq!(listed.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), sorted);
    let under_a = objects.list("s", "a/", None, 100).await.unwrap();
    assert_eq!(
        under_a.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["a/b", "a/b/c"]
    );
    let long_prefix = format!("long/{}", "p".repeat(250));
    let by_long_prefix = objects.list("s", &long_prefix, None, 100).await.unwrap();
    assert_eq!(by_long_prefix.objects.len(), 1);
    assert!(objects.delete("s", "a").await.unwrap());
    assert!(objects.get("s", "a/b").await.is_ok(), "deleting `a` leaves `a/b`");
}

#[tokio::test]
async fn the_local_filesystem_holds_every_valid_key() {
    let dir = tempfile::tempdir().unwrap();
    let backend = ObjectBackend::Local(dir.path().join("objects"));
    let objects = Objects::new(backend.build().unwrap(), limits()).with_layout(backend.layout());
    keys_the_filesystem_cannot_hold_as_they_are(objects).await;
}

#[tokio::test]
async fn memory_holds_the_same_keys() {
    let objects = Objects::new(ObjectBackend::Memory.build().unwrap(), limits());
    keys_the_filesystem_cannot_hold_as_they_are(objects).await;
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<ObjectEvent>>);

impl ObjectListener for Recorder {
    fn changed(&self, event: &ObjectEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

#[tokio::test]
async fn listeners_hear_committed_puts_and_deletes_only() {
    let objects = Objects::new(ObjectBackend::Memory.build().unwrap(), limits());
    let recorder = Arc::new(Recorder::default());
    objects.subscribe(recorder.clone());
    objects.put("s", "a.txt", Bytes::from_static(b"abc"), None, BTreeMap::new()).await.unwrap();
    assert!(objects.put("s", "../x", Bytes::new(), None, BTreeMap::new()).await.is_err());
    assert!(!objects.delete("s", "missing").await.unwrap());
    assert!(objects.delete("s", "a.txt").await.unwrap());
    let events = recorder.0.lock().unwrap().clone();
    let seen: Vec<(ObjectChange, &str, Option<u64>)> = events
        .iter()
        .map(|e| (e.change, e.key.as_str(), e.info.as_ref().map(|i| i.size)))
        .collect();
    assert_eq!(
        seen,
        [(ObjectChange::Put, "a.txt", Some(3)), (ObjectChange::Delete, "a.txt", None)]
    );
    assert!(events.iter().all(|e| e.space == "s"));
}

async fn put_bytes(objects: &Objects, key: &str, size: usize) -> Result<ObjectInfo, ObjectError> {
    objects.put("s", key, Bytes::from(vec![b'x'; size]), None, BTreeMap::new()).await
}

fn refused(result: Result<ObjectInfo, ObjectError>) -> String {
    match result {
        Err(ObjectError::QuotaExceeded(message)) => message,
        other => panic!("expected a quota error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_space_keeps_at_most_its_quota_and_overwrites_and_deletes_count_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let backend = ObjectBackend::Local(dir.path().join("objects"));
    let quota = SpaceQuota { max_bytes: 10, max_objects: 2 };
    let open = || {
        Objects::new(backend.build().unwrap(), limits())
            .with_layout(backend.layout())
            .with_quota(quota)
    };
    let objects = open();
    put_bytes(&objects, "a", 6).await.unwrap();
    let message = refused(put_bytes(&objects, "dir/b", 5).await);
    assert_eq!(
        message,
        "quota exceeded: the space holds 6 bytes of objects and this put adds 5, over its limit \
         of 10; nothing was stored"
    );
    assert!(matches!(objects.head("s", "dir/b").await, Err(ObjectError::NotFound(_))));

    // An overwrite counts the difference, both ways.
    put_bytes(&objects, "a", 3).await.unwrap();
    put_bytes(&objects, "dir/b", 5).await.unwrap();
    assert_eq!(objects.usage(), [("s".to_string(), SpaceUsage { bytes: 8, objects: 2 })]);
    let message = refused(put_bytes(&objects, "c", 1).await);
    assert!(message.contains("holds 2 objects"), "{message}");
    refused(put_bytes(&objects, "a", 6).await);
    assert_eq!(objects.head("s", "a").await.unwrap().size, 3, "a refused overwrite keeps the old");
    // Another space has its own quota.
    objects.put("t", "a", Bytes::from_static(b"0123456789"), None, BTreeMap::new()).await.unwrap();

    assert!(objects.delete("s", "dir/b").await.unwrap());
    put_bytes(&objects, "c", 1).await.unwrap();
    let expected = vec![
        ("s".to_string(), SpaceUsage { bytes: 4, objects: 2 }),
        ("t".to_string(), SpaceUsage { bytes: 10, objects: 1 }),
    ];
    assert_eq!(objects.usage(), expected);
    assert_eq!(objects.key_locks.len(), 0, "no lock kept for keys nobody writes");

    // A restart counts the same usage from the store, and enforces it.
    let reopened = open();
    reopened.count_usage().await.unwrap();
    assert_eq!(reopened.usage(), expected);
    refused(put_bytes(&reopened, "d", 7).await);
}
