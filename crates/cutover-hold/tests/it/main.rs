//! The journal on real files: calls round-trip, a torn last record (a crash
//! mid-write, never answered) is cut off, damage elsewhere is an error.

use cutover_hold::{Call, Journal, JournalReader};

fn call(body: &str) -> Call {
    Call {
        id: 0,
        received_at: 1,
        method: "POST".into(),
        path: "/api/launchPatient?site=7".into(),
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        body: body.as_bytes().to_vec(),
    }
}

fn calls(directory: &std::path::Path) -> Vec<Call> {
    let mut reader = JournalReader::open(directory).expect("reader");
    let mut calls = Vec::new();
    while let Some(call) = reader.next_call().expect("a call") {
        calls.push(call);
    }
    calls
}

#[tokio::test]
async fn calls_round_trip_and_a_torn_tail_is_cut_off() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let journal = Journal::open(directory.path()).expect("journal");
    assert_eq!(journal.append(call("one")).await.expect("append"), 1);
    assert_eq!(journal.append(call("two")).await.expect("append"), 2);
    drop(journal);
    let read = calls(directory.path());
    assert_eq!(read.len(), 2);
    assert_eq!(
        (read[1].id, read[1].body.as_slice()),
        (2, b"two".as_slice())
    );
    assert_eq!(read[0].path, "/api/launchPatient?site=7");
    assert_eq!(read[0].headers, call("x").headers);

    // Half a record at the end, as a crash mid-write leaves it.
    let path = directory.path().join("calls.log");
    let mut bytes = std::fs::read(&path).expect("journal");
    let whole = bytes.len();
    bytes.extend_from_slice(&[0, 0, 0, 200, 1, 2]);
    std::fs::write(&path, &bytes).expect("torn");
    let journal = Journal::open(directory.path()).expect("reopened");
    assert_eq!(
        std::fs::metadata(&path).expect("size").len() as usize,
        whole
    );
    assert_eq!(journal.append(call("three")).await.expect("append"), 3);
    drop(journal);
    assert_eq!(calls(directory.path()).len(), 3);

    // A damaged record with more after it is not a torn tail: it is reported.
    let mut bytes = std::fs::read(&path).expect("journal");
    bytes[12] ^= 0xff;
    std::fs::write(&path, &bytes).expect("damage");
    let mut reader = JournalReader::open(directory.path()).expect("reader");
    let error = reader.next_call().expect_err("damaged");
    assert!(
        error
            .to_string()
            .contains("record 1 is damaged (checksum mismatch)"),
        "{error}"
    );
}
