//! Probes the system DPDK with pkg-config, compiles the C shim, and generates bindings for the
//! allow-listed part of the API only (the full headers would pull in thousands of items).
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!("DPDK >= 22.11 not found through pkg-config ({e}); run scripts/setup.sh as root")
        });

    // Link every DPDK library pkg-config names, with --no-as-needed so the PMD libraries that
    // register drivers from constructors (net_ring's rte_eth_from_rings) stay linked.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let mut cc = cc::Build::new();
    cc.file("csrc/shim.c")
        .flag("-march=corei7")
        .flag("-include")
        .flag("rte_config.h");
    cc.flag_if_supported("-Wno-deprecated-declarations");
    for p in &dpdk.include_paths {
        cc.include(p);
    }
    cc.compile("aperture_shim");

    let mut builder = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_arg("-march=corei7")
        .clang_args(["-include", "rte_config.h"])
        .allowlist_function("aperture_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|wait_lcore|process_type|get_runtime_dir)")
        .allowlist_function("rte_(get_main_lcore|get_next_lcore|lcore_count|lcore_to_socket_id|socket_id)")
        .allowlist_function("rte_get_tsc_hz|rte_strerror")
        .allowlist_function("rte_eth_(dev_configure|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|dev_count_avail|dev_get_port_by_name|dev_info_get|macaddr_get|stats_get|stats_reset|promiscuous_enable|dev_socket_id|link_get_nowait|from_rings|dev_is_valid_port|dev_rss_reta_update|dev_rss_hash_conf_get)")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free")
        .allowlist_function("rte_mbuf_dyn(field|flag)_lookup|rte_mbuf_dyn_rx_timestamp_register")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_var("RTE_(MAX_LCORE|MAX_ETHPORTS|PKTMBUF_HEADROOM|MBUF_DEFAULT_BUF_SIZE|ETH_MQ_RX_NONE|RING_F_SP_ENQ|RING_F_SC_DEQ)")
        .allowlist_var("RTE_ETH_RX_OFFLOAD_.*|RTE_ETH_TX_OFFLOAD_.*|RING_F_SP_ENQ|RING_F_SC_DEQ|RING_F_EXACT_SZ")
        .allowlist_type("rte_mbuf|rte_eth_conf|rte_eth_stats|rte_eth_dev_info|rte_eth_link|rte_ether_addr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false);
    for p in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", p.display()));
    }
    let bindings = builder.generate().expect("bindgen failed on csrc/shim.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings
        .write_to_file(out)
        .expect("cannot write bindings.rs");
}
