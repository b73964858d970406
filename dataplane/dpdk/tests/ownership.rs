//! The queue handles' ownership rules on real ring ports: a port hands out its queues once,
//! cannot stop while a handle lives, and stops once they are gone; packets go through the
//! handles. (What safe code cannot do at all, clone a handle or poll it through a shared
//! reference, is checked by the compile_fail examples on `RxQueue`.)
use aperture_dpdk::{Burst, Eal, Mbuf, Mempool, PortError, RingPair, TxBuffer};

#[test]
fn a_port_hands_out_its_queues_once_and_stops_only_when_they_are_gone() {
    let _eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--file-prefix=apown{}", std::process::id()),
        "--log-level=lib.eal:error",
    ])
    .expect("EAL");
    let pool = Mempool::new("own_pool", 511, 0, 2048, -1).unwrap();
    let pair = RingPair::new("own", 64).unwrap();
    let a = pair.a.start(&Default::default(), &pool).unwrap();
    let mut b = pair.b.start(&Default::default(), &pool).unwrap();
    assert_eq!((a.rx.len(), a.tx.len()), (1, 1));
    assert_eq!((a.rx[0].port(), a.rx[0].queue()), (pair.a.id(), 0));
    // A second start (through another handle of the same port, too) gives no second owner.
    let again = aperture_dpdk::Port::by_name(pair.a.name()).unwrap();
    assert!(matches!(
        again.start(&Default::default(), &pool),
        Err(PortError::AlreadyStarted { .. })
    ));
    // Packets go through the handles.
    let mut tx = TxBuffer::default();
    let _ = tx.push(Mbuf::from_bytes(&pool, &[0x5a; 60]).unwrap());
    assert_eq!(b.tx[0].flush(&mut tx).sent, 1);
    let mut a = a.into_pairs();
    let mut burst = Burst::default();
    assert_eq!(a[0].0.burst(&mut burst), 1);
    burst.clear();
    // While a handle lives the port does not stop; once all are dropped it does.
    match pair.a.stop() {
        Err(PortError::QueuesInUse { handles, .. }) => assert_eq!(handles, 2),
        other => panic!("stopped with its queues in use: {other:?}"),
    }
    drop(a);
    pair.a.stop().expect("stops once its queues are gone");
    assert!(pair.b.stop().is_err(), "b's queues are still held");
    b.rx.clear();
    b.tx.clear();
    pair.b.stop().unwrap();
}
