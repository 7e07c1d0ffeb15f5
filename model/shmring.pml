/* SPDX-License-Identifier: MIT */
/*
 * libshmring: the publish, sleep and wake protocol of a BLOCK ring, for spin.
 *
 * One producer, two broadcast consumers, a ring of N records, NMSG messages,
 * then the producer shuts down.  Memory is x86-TSO, which is where the code
 * runs: every process has a FIFO store buffer (a channel) that a flusher
 * process drains into memory at any moment; a full fence (mfence,
 * fence_full()) waits until the buffer is empty; a locked read-modify-write
 * (lock xadd / xchg: atomic_fetch_add, atomic_exchange) drains it first.
 * Plain and release stores are both ordinary stores on x86, so they go
 * through the buffer.  Without the buffers the model would be sequentially
 * consistent, and a missing fence could not be seen.
 *
 * Asymmetric fences (wait.c:15-25).  Every process here registered for
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED (asym_register(), wait.c:108-124: p->light,
 * c->light), so the wakers are light: after storing tail (commit()) or a
 * cursor (release()) they only have waker_fence(1), a compiler barrier, and
 * the model has no step for it.  The sleeper, after announcing itself and its
 * own full fence, calls asym_fence(), membarrier(GLOBAL_EXPEDITED): before it
 * returns, every CPU running a registered process executes a full barrier.
 * In the model that is one atomic step of the sleeper that drains its
 * wakers' store buffers into memory (a remote fence).  The wakers are not
 * stopped or synchronised with: the step may fall anywhere in their code,
 * between their store and their load of the announcement included.  After
 * it, whatever a waker stored before is in memory for the sleeper's
 * re-check, and every load the waker makes sees the announcement (in memory
 * since the sleeper's own fence).  The kernel also fences the other
 * registered processes; the model drains only the wakers' buffers, which is
 * weaker.  Not modelled: a failing membarrier() (asym_fence() returns -1,
 * wait.c:128-134), after which the sleeper caps its sleep at
 * ASYM_FALLBACK_NS, 1 ms (wait.c:94, 305, 365): a light waker may then
 * miss it, and it wakes up to 1 ms late, by design.  An unregistered waker
 * (waker_fence(0), a full fence) only has fewer executions than a light one;
 * the shutdown's wake_consumers(..., 0) is one, and the model fences there.
 *
 * Fence modes (layout 6; wait.c asym_sleep(), internal.h waker_fence()).
 * Each direction has a mode word, cs->cmode for the consumers' sleeps and
 * cs->pmode for the producer's: generation * 4 + LIGHT, ARMING or HEAVY.
 * A light waker loads it after its store and fences unless it is LIGHT;
 * after a fence it may turn it back to LIGHT in the next generation (the
 * code does after ASYM_QUIET fences with no sleeper found; here at any
 * fence, at most MAXRELAX times).  A sleeper, after its own fence, loads
 * it: HEAVY, no membarrier(); LIGHT, CAS to ARMING, membarrier(), CAS to
 * HEAVY; ARMING (another sleeper is arming), membarrier() only.  MODES
 * picks which directions switch (run-model.sh checks 1 and 2 apart with
 * NMSG 3, and 3, both at once, with NMSG 2); a direction that does not
 * switch stays LIGHT: the protocol described above.
 *
 * A futex is modelled as the kernel does it: FUTEX_WAIT compares the word
 * and blocks in one atomic step; FUTEX_WAKE unblocks the waiters.  The
 * library also caps sleeps (with liveness, 50 ms consumers, 20 ms producer;
 * 1 ms after a failed membarrier); the model has no timeouts, because the
 * protocol must not need them: a lost wake-up here is a process blocked for
 * ever.
 *
 * After its last message the producer either shuts down at once, or first
 * goes quiet until both consumers have read everything (an application that
 * publishes, then idles).  Without the quiet branch, a wake-up lost on a
 * commit would be hidden by a later wake (the next commit's, or the
 * shutdown's, which fences): the consumer would still finish.
 *
 * Checked (see run-model.sh):
 *   - assertions: a consumer never reads a record that is not published, or
 *     that the producer already reused (data[] holds the seq it expects);
 *   - no invalid end state: nobody is left blocked in a futex wait (or the
 *     quiet producer waiting for a consumer asleep) at the end: that is a
 *     lost wake-up, or a deadlock;
 *   - LTL "eventually everybody finished" (ltl done), under weak fairness:
 *     no lost wake-up and no livelock.
 *
 * Each step names the line of C it stands for (src/ at commit a144a4e), or,
 * for the wake_armed flag of layout 4, its function.
 * The lines tagged with a seeded-bug marker are what run-model.sh removes
 * or changes in its seeded-bug copies.
 */

#ifndef N
#define N 2            /* ring capacity in records */
#endif
#ifndef NMSG
#define NMSG 3         /* messages the producer publishes */
#endif
#define NCONS 2
#define SBSZ 2         /* store buffer entries */

/* Memory addresses. */
#define A_TAIL     0   /* prod->tail                      layout.h shm_prod */
#define A_CLOSED   1   /* prod->closed */
#define A_WS       2   /* cs->wake_seq: consumers' futex  layout.h shm_cshared */
/* 3: cs->sleepers of layout 3, no longer used */
#define A_PWAIT    4   /* cs->prod_waiting */
#define A_PWS      5   /* cs->prod_wake_seq: producer's futex */
#define A_CUR0     6   /* slot[0].pos, slot[1].pos: the cursors */
#define A_ARMED    8   /* cs->wake_armed (layout 4) */
#define A_DATA0    9   /* data[0..N-1]: the record at each index */
#define A_CMODE    (A_DATA0 + N)      /* cs->cmode (layout 6) */
#define A_PMODE    (A_DATA0 + N + 1)  /* cs->pmode */
#define NADDR      (A_DATA0 + N + 2)

/* Fence modes (internal.h ASYM_*): generation * 4 + state. */
#define LIGHT  0
#define ARMING 1
#define HEAVY  2
/* Which modes switch: 1 cmode, 2 pmode, 3 both.  A mode that does not
 * switch stays LIGHT: its wakers never fence and its sleepers always call
 * membarrier() (the protocol before layout 6). */
#ifndef MODES
#define MODES 3
#endif
#define DYN(a) ((a) == A_CMODE -> (MODES & 1) : (MODES & 2))
#ifndef MAXRELAX
#define MAXRELAX 1     /* asym_relax() calls that succeed, per mode */
#endif

byte mem[NADDR];
byte fw[NCONS + 1];    /* futex wait: 0 running, else 1 + address waited on */
byte finished;
byte relaxed[2];       /* successful asym_relax() calls: [0] cmode, [1] pmode */

chan sb[NCONS + 1] = [SBSZ] of { byte, byte };   /* store buffers; [NCONS] = producer */
#define PROD NCONS

#define STORE(me, a, v)  sb[me]!a,v
#define FENCE(me)        (len(sb[me]) == 0)
#define RMW_ADD(me, a, d) atomic { len(sb[me]) == 0 -> mem[a] = mem[a] + d }

/* Store buffer q drains into memory (inside an atomic step). */
inline drain(q)
{
	do
	:: len(sb[q]) > 0 -> sb[q]?ba,bv; mem[ba] = bv
	:: len(sb[q]) == 0 -> break
	od
}

/* asym_fence(), wait.c:128-134, membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)
 * by a consumer about to sleep: its waker, the producer, executes a full
 * barrier wherever it is. */
inline membarrier_consumer()
{
	atomic { drain(PROD); ba = 0; bv = 0 }
}

/* The same by the producer about to sleep: its wakers are both consumers. */
inline membarrier_producer()
{
	atomic { drain(0); drain(1); ba = 0; bv = 0 }
}

/* asym_fence() by process me. */
inline membarrier(me)
{
	if
	:: me == PROD -> membarrier_producer()
	:: else -> membarrier_consumer()
	fi
}

/*
 * waker_fence(mode, quiet), internal.h, for a light waker (commit(),
 * release()): after storing its state, the waker loads the mode (acquire)
 * and fences unless it is LIGHT.  After a fence it may relax the mode
 * (asym_relax(), wait.c: CAS to LIGHT in the next generation).  The code
 * does that after ASYM_QUIET fences without a sleeper; the model lets it
 * happen after any fence (more executions), at most MAXRELAX times per
 * mode, so that generations stay bounded.  k: 0 cmode, 1 pmode.
 */
inline waker_fence(me, a, k)
{
	m = (DYN(a) -> mem[a] : LIGHT);
	if
	:: (m & 3) != LIGHT ->
		FENCE(me);                             /*@BUG-HEAVY@ fence_full() */
		if
		:: relaxed[k] < MAXRELAX ->
			atomic {
				len(sb[me]) == 0 ->
				if
				:: mem[a] == m -> mem[a] = (m & 252) + 4; relaxed[k]++
				:: else -> skip
				fi
			}
		:: skip
		fi
	:: else -> skip
	fi;
	m = 0
}

/*
 * asym_sleep(mode), wait.c, after the sleeper's announcement and its fence:
 * no barrier in HEAVY; in LIGHT, try to arm (CAS to ARMING), membarrier(),
 * then CAS ARMING to HEAVY; in ARMING, membarrier() only.
 */
inline asym_sleep(me, a)
{
	m = mem[a];                                    /* load_acquire(mode) */
	if
	:: !DYN(a) -> skip
		; membarrier(me)                       /*@BUG-MEMBARRIER@ asym_fence() */
	:: DYN(a) && (m & 3) == HEAVY -> skip
	:: DYN(a) && (m & 3) != HEAVY ->
		if
		:: (m & 3) == LIGHT ->
			atomic {                       /* cas32(mode, m, m | ARMING) */
				len(sb[me]) == 0 ->
				if
				:: mem[a] == m -> mem[a] = m + ARMING; arm = 1   /*@BUG-ARMING@*/
				:: else -> skip
				fi
			}
		:: else -> skip
		fi;
		membarrier(me);                        /*@BUG-MEMBARRIER@ asym_fence() */
		if
		:: arm ->
			atomic {                       /* cas32(mode, m | ARMING, m | HEAVY) */
				if
				:: mem[a] == m + ARMING -> mem[a] = m + HEAVY
				:: else -> skip
				fi
			}
		:: else -> skip
		fi
	fi;
	m = 0; arm = 0
}

/* FUTEX_WAIT(word, v): compare and block, one step; then wait to be woken. */
inline futex_wait(me, a, v)
{
	atomic {
		if
		:: mem[a] == v -> fw[me] = 1 + a
		:: else -> skip
		fi
	}
	(fw[me] == 0)
}

/* FUTEX_WAKE(word, all). */
inline futex_wake(a)
{
	atomic {
		i = 0;
		do
		:: i <= NCONS -> if :: fw[i] == 1 + a -> fw[i] = 0 :: else -> skip fi; i++
		:: else -> break
		od;
		i = 0
	}
}

/* a and v are reset once used: they are dead, and the sleepers' drains
 * bypass the flusher, so stale values would split states for nothing. */
proctype flusher(byte me)
{
	byte a, v;
end:	do
	:: atomic { sb[me]?a,v -> mem[a] = v; a = 0; v = 0 }
	od
}

/* wake_consumers(), wait.c:204-220, after waker_fence(light), wait.c:209
 * (waker_fence(), wait.c:138-144): the caller stored tail or closed, and
 * fenced only if not light. */
inline wake_consumers()
{
	/* Since layout 4 the waker looks at wake_armed, not at the sleeper
	 * count, and takes it by exchange: one wake per arming
	 * (internal.h wake_consumers(), wait.c wake_consumers_slow()). */
	if
	:: mem[A_ARMED] != 0 ->                        /* load_relaxed(wake_armed) */
		atomic {                               /* exchange(wake_armed, 0) */
			len(sb[PROD]) == 0 -> x = mem[A_ARMED]; mem[A_ARMED] = 0
		}
		if
		:: x != 0 ->
			RMW_ADD(PROD, A_WS, 1);        /* fetch_add(wake_seq) */
			futex_wake(A_WS)               /* futex_wake(INT_MAX) */
		:: else -> skip
		fi;
		x = 0
	:: else -> skip
	fi
}

inline cursor_min()
{
	/* refresh_limit() -> scan_min(), producer.c:61-69, 27-53:
	 * load_acquire(pos) of each cursor, producer.c:45 */
	c0 = mem[A_CUR0];
	c1 = mem[A_CUR0 + 1];
	lim = (c0 < c1 -> c0 : c1)
}

proctype producer()
{
	byte seq = 0, c0, c1, lim, v, i, ba, bv, quiet, x, m, arm;
	/* shmring_send_wait() -> send(), producer.c:499-507, 474-487 */
	do
	:: seq == NMSG -> break
	:: seq < NMSG ->
		v = 0;
		/* reserve_wait() -> reserve(), producer.c:398-409, 346-386:
		 * room if the record fits above the cached minimum,
		 * producer.c:359; refresh_limit() when it does not, 363. */
		cursor_min();
		if
		:: seq - lim >= N ->
			/* -EAGAIN (producer.c:375-376): reserve_wait() calls
			 * wait_for_room(), producer.c:405, wait.c:335-390 (after
			 * the spin phase, wait.c:339-355, which only re-checks
			 * room). */
			v = mem[A_PWS];                /* wait.c:357 load_acquire(prod_wake_seq) */
			STORE(PROD, A_PWAIT, 1);       /* wait.c:358 store_relaxed(prod_waiting, 1) */
			FENCE(PROD);                   /* wait.c:359 fence_full() */
			asym_sleep(PROD, A_PMODE);     /* wait.c:360 asym_fence(), now asym_sleep(pmode) */
			cursor_min();                  /* wait.c:361 refresh_limit() */
			if
			:: seq - lim >= N ->
				futex_wait(PROD, A_PWS, v)   /* wait.c:368-369 futex_wait_until() */
			:: else -> skip
			fi;
			STORE(PROD, A_PWAIT, 0)        /* wait.c:370 store_relaxed(prod_waiting, 0) */
			/* wait.c:371-373: refresh and return if room, else
			 * loop; the reserve at the top of our loop does both. */
		:: else ->
			/* reserve() writes the header, producer.c:379-381;
			 * send() copies the payload, producer.c:484. */
			STORE(PROD, A_DATA0 + seq % N, seq);
			seq++;
			/* commit(), producer.c:422-444 (from send(), 485):
			 * store_release(tail), producer.c:437 */
			STORE(PROD, A_TAIL, seq);
			/* wake_consumers(p->r, n, &p->quiet), producer.c:442:
			 * light, so waker_fence() fences only if cmode is not
			 * LIGHT */
			waker_fence(PROD, A_CMODE, 0);
			wake_consumers()
		fi
	od;
	/* Either shut down now, or first idle until both consumers have read
	 * everything (no C line: time passing with no commit, see the top
	 * comment).  The choice is made before the wait, which may block. */
	if
	:: skip
	:: quiet = 1
	fi;
	(quiet == 0 || (mem[A_CUR0] == NMSG && mem[A_CUR0 + 1] == NMSG));
	quiet = 0;
	/* shmring_producer_shutdown() -> do_shutdown(), producer.c:268-284,
	 * 227-246 */
	STORE(PROD, A_CLOSED, 1);                      /* producer.c:237 store_release(closed) */
	/* wake_consumers(p->r, INT_MAX, 0), producer.c:239: not light */
	FENCE(PROD);                                   /* wait.c:209, 143 waker_fence(0): fence_full() */
	wake_consumers();
	finished++
}

proctype consumer(byte me)
{
	byte rpos = 0, t, d, v, now, x, i, ba, bv, m, arm;
	/* shmring_recv_wait() -> recv_one() -> read_batch() -> recv_batch(),
	 * consumer.c:555-561, 488-499, 455-471, 411-451: one message a call */
	do
	::	/* dead locals are reset, so that they do not split states */
		d = 0; v = 0; now = 0; x = 0;
		/* next_record(), consumer.c:315-349 (from recv_batch(), 425) */
		t = mem[A_TAIL];                       /* consumer.c:319 load_acquire(tail) */
		if
		:: t != rpos ->
			/* consumer.c:332-334 read the record at rpos; recv_batch()
			 * copies the payload, consumer.c:440 */
			d = mem[A_DATA0 + rpos % N];
			assert(d == rpos);             /* published, and not yet reused */
			rpos++;                        /* take(), consumer.c:354 (from 443) */
			/* release(), consumer.c:359-380 (from recv_batch(), 447):
			 * store_release(slot->pos), consumer.c:376 */
			STORE(me, A_CUR0 + me, rpos);
			/* wake_producer(c->cs, &c->quiet), consumer.c:378, wait.c:223-236:
			 * light, so waker_fence(), wait.c:228, fences only if pmode
			 * is not LIGHT */
			waker_fence(me, A_PMODE, 1);
			if
			:: mem[A_PWAIT] != 0 ->        /* wait.c:229 load_relaxed(prod_waiting) */
				atomic {               /* wait.c:232 exchange(prod_waiting, 0) */
					len(sb[me]) == 0 -> x = mem[A_PWAIT]; mem[A_PWAIT] = 0
				}
				if
				:: x != 0 ->
					RMW_ADD(me, A_PWS, 1);  /* wait.c:234 fetch_add(prod_wake_seq) */
					futex_wake(A_PWS)       /* wait.c:235 futex_wake(1) */
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: else ->
			if
			:: mem[A_CLOSED] != 0 ->       /* consumer.c:324 load_acquire(closed) */
				t = mem[A_TAIL];       /* consumer.c:326 re-read tail */
				if
				:: t == rpos -> break  /* consumer.c:327-328 -EPIPE: done */
				:: else -> skip
				fi
			:: else ->
				/* -EAGAIN (consumer.c:325): read_batch() calls
				 * wait_for_data(), consumer.c:467, wait.c:274-327
				 * (after the spin phase, wait.c:281-294, which only
				 * re-checks consumer_ready()). */
				v = mem[A_WS];         /* wait.c:296 load_acquire(wake_seq) */
				STORE(me, A_ARMED, 1); /* wait_for_data(): store_relaxed(wake_armed, 1) */
				FENCE(me);             /* wait.c:300 fence_full() */
				asym_sleep(me, A_CMODE); /* wait.c:301 asym_fence(), now asym_sleep(cmode) */
				/* wait.c:302 consumer_ready() -> has_data(), wait.c:246-249, 238-244 */
				now = (mem[A_TAIL] != rpos || mem[A_CLOSED] != 0);   /*@BUG-RECHECK@*/
				if
				:: !now -> futex_wait(me, A_WS, v)   /* wait.c:310 futex_wait_until() */
				:: else -> skip
				fi
				/* wait.c:314-315 return 0 if ready, else loop: our
				 * loop re-checks at the top, then sleeps again. */
			fi
		fi
	od;
	finished++
}

ltl done { <> (finished == NCONS + 1) }

init {
	atomic {
		run flusher(0); run flusher(1); run flusher(PROD);
		run consumer(0); run consumer(1);
		run producer()
	}
}
