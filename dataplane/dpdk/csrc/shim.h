/* The DPDK surface Aperture uses. bindgen reads this header (with an allow-list in build.rs);
 * shim.c turns the static-inline functions and per-lcore variables into real symbols. */
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_version.h>

int aperture_errno(void);
unsigned aperture_lcore_id(void);
uint64_t aperture_rdtsc(void);
uint16_t aperture_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t aperture_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *aperture_pktmbuf_alloc(struct rte_mempool *mp);
void aperture_pktmbuf_free(struct rte_mbuf *m);
int aperture_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
char *aperture_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int aperture_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
unsigned aperture_mempool_avail(const struct rte_mempool *mp);
const char *aperture_version(void);
unsigned aperture_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned n);
unsigned aperture_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned n);
