// SPDX-License-Identifier: MIT
// Google Benchmark micro-benchmarks of single-process operations on one
// anonymous ring: reserve+commit then peek+release (one message each way),
// and send then recv.  Built only when libbenchmark-dev is present.
#include <benchmark/benchmark.h>
#include <cstring>

#include "shmring.h"

namespace {

struct Ring {
	shmring *r = nullptr;
	shmring_producer *p = nullptr;
	shmring_consumer *c = nullptr;
	Ring()
	{
		if (shmring_create_anon("micro", nullptr, &r) || shmring_producer_open(r, &p) ||
		    shmring_consumer_open(r, SHMRING_START_OLDEST, &c))
			std::abort();
	}
	~Ring()
	{
		shmring_consumer_close(c);
		shmring_producer_close(p);
		shmring_close(r);
	}
};

void BM_reserve_commit_peek_release(benchmark::State &st)
{
	Ring ring;
	size_t size = static_cast<size_t>(st.range(0));
	for (auto _ : st) {
		void *d;
		const void *q;
		size_t len;
		if (shmring_reserve(ring.p, size, &d))
			st.SkipWithError("reserve");
		std::memset(d, 1, size);
		shmring_commit(ring.p);
		if (shmring_peek(ring.c, &q, &len))
			st.SkipWithError("peek");
		benchmark::DoNotOptimize(q);
		shmring_release(ring.c);
	}
	st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_reserve_commit_peek_release)->Arg(8)->Arg(64)->Arg(4096);

void BM_send_recv(benchmark::State &st)
{
	Ring ring;
	size_t size = static_cast<size_t>(st.range(0));
	static char in[65536], out[65536];
	for (auto _ : st) {
		size_t len;
		if (shmring_send(ring.p, in, size) || shmring_recv(ring.c, out, sizeof(out), &len))
			st.SkipWithError("send/recv");
		benchmark::DoNotOptimize(out);
	}
	st.SetItemsProcessed(st.iterations());
}
BENCHMARK(BM_send_recv)->Arg(8)->Arg(64)->Arg(4096)->Arg(65536);

void BM_batch32_reserve_commit_peek_batch(benchmark::State &st)
{
	Ring ring;
	shmring_msg m[32];
	for (auto _ : st) {
		void *d;
		for (int i = 0; i < 32; i++)
			if (shmring_reserve(ring.p, 64, &d))
				st.SkipWithError("reserve");
		shmring_commit(ring.p);
		if (shmring_peek_batch(ring.c, m, 32) != 32)
			st.SkipWithError("peek_batch");
		shmring_release(ring.c);
	}
	st.SetItemsProcessed(st.iterations() * 32);
}
BENCHMARK(BM_batch32_reserve_commit_peek_batch);

} // namespace

BENCHMARK_MAIN();
