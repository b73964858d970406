/* Real symbols for DPDK's static-inline functions and per-lcore variables, so Rust can call them. */
#include "shim.h"

int aperture_errno(void) { return rte_errno; }
unsigned aperture_lcore_id(void) { return rte_lcore_id(); }
uint64_t aperture_rdtsc(void) { return rte_rdtsc(); }

uint16_t aperture_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t aperture_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *aperture_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
void aperture_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

int aperture_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

char *aperture_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int aperture_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }
unsigned aperture_mempool_avail(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }
const char *aperture_version(void) { return rte_version(); }

unsigned aperture_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned n)
{
	return rte_ring_enqueue_burst(r, (void **)pkts, n, NULL);
}

unsigned aperture_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **pkts, unsigned n)
{
	return rte_ring_dequeue_burst(r, (void **)pkts, n, NULL);
}
