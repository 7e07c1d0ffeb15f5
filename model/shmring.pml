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
 * A futex is modelled as the kernel does it: FUTEX_WAIT compares the word
 * and blocks in one atomic step; FUTEX_WAKE unblocks the waiters.  The
 * library also caps every sleep (50 ms consumers, 20 ms producer: liveness
 * checks); the model has no timeouts, because the protocol must not need
 * them: a lost wake-up here is a process blocked for ever.
 *
 * Checked (see run-model.sh):
 *   - assertions: a consumer never reads a record that is not published, or
 *     that the producer already reused (data[] holds the seq it expects);
 *   - no invalid end state: nobody is left blocked in a futex wait at the end
 *     (that is a lost wake-up, or a deadlock);
 *   - LTL "eventually everybody finished" (ltl done), under weak fairness:
 *     no lost wake-up and no livelock.
 *
 * Each step names the line of C it stands for (src/ at commit 8c6aa2c).
 * The two lines tagged with a seeded-bug marker are what run-model.sh
 * removes or changes in its seeded-bug copies.
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
#define A_TAIL     0   /* prod->tail                       layout.h shm_prod */
#define A_CLOSED   1   /* prod->closed */
#define A_WS       2   /* prod->wake_seq: consumers' futex */
#define A_SLEEPERS 3   /* cs->sleepers */
#define A_PWAIT    4   /* cs->prod_waiting */
#define A_PWS      5   /* cs->prod_wake_seq: producer's futex */
#define A_CUR0     6   /* slot[0].pos, slot[1].pos: the cursors */
#define A_DATA0    8   /* data[0..N-1]: the record at each index */
#define NADDR      (A_DATA0 + N)

byte mem[NADDR];
byte fw[NCONS + 1];    /* futex wait: 0 running, else 1 + address waited on */
byte finished;

chan sb[NCONS + 1] = [SBSZ] of { byte, byte };   /* store buffers; [NCONS] = producer */
#define PROD NCONS

#define STORE(me, a, v)  sb[me]!a,v
#define FENCE(me)        (len(sb[me]) == 0)
#define RMW_ADD(me, a, d) atomic { len(sb[me]) == 0 -> mem[a] = mem[a] + d }

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

/* a and v are reset once used: they are dead, and stale values would split
 * states for nothing. */
proctype flusher(byte me)
{
	byte a, v;
end:	do
	:: atomic { sb[me]?a,v -> mem[a] = v; a = 0; v = 0 }
	od
}

/* wake_consumers(), wait.c:119-131; the caller stored tail or closed. */
inline wake_consumers()
{
	FENCE(PROD);                                   /*@BUG-FENCE@ wait.c:124 fence_full() */
	if
	:: mem[A_SLEEPERS] > 0 ->                      /* wait.c:125 load_relaxed(sleepers) */
		RMW_ADD(PROD, A_WS, 1);                /* wait.c:126 fetch_add(wake_seq) */
		futex_wake(A_WS)                       /* wait.c:127 futex_wake(INT_MAX) */
	:: else -> skip
	fi
}

inline cursor_min()
{
	/* refresh_limit() -> scan_min(), producer.c:27-53, 61-69:
	 * load_acquire(pos) of each cursor, producer.c:45 */
	c0 = mem[A_CUR0];
	c1 = mem[A_CUR0 + 1];
	lim = (c0 < c1 -> c0 : c1)
}

proctype producer()
{
	byte seq = 0, c0, c1, lim, v, i;
	do
	:: seq == NMSG -> break
	:: seq < NMSG ->
		v = 0;
		/* reserve(), producer.c:251-256: room if the record fits above
		 * the cached minimum; refresh_limit() when it does not. */
		cursor_min();
		if
		:: seq - lim >= N ->
			/* -EAGAIN: shmring_reserve_wait() producer.c:292-299 calls
			 * wait_for_room(), wait.c:237-262 (after the spin phase,
			 * which only re-checks room). */
			v = mem[A_PWS];                /* wait.c:238 load_acquire(prod_wake_seq) */
			STORE(PROD, A_PWAIT, 1);       /* wait.c:239 store_relaxed(prod_waiting, 1) */
			FENCE(PROD);                   /* wait.c:240 fence_full() */
			cursor_min();                  /* wait.c:241 refresh_limit() */
			if
			:: seq - lim >= N ->
				futex_wait(PROD, A_PWS, v)   /* wait.c:246 futex_wait_until() */
			:: else -> skip
			fi;
			STORE(PROD, A_PWAIT, 0)        /* wait.c:247 store_relaxed(prod_waiting, 0) */
			/* wait.c:248-250: refresh and return if room, else
			 * loop; the reserve at the top of our loop does both. */
		:: else ->
			/* reserve() writes the header, producer.c:271-273;
			 * shmring_send() copies the payload, producer.c:355. */
			STORE(PROD, A_DATA0 + seq % N, seq);
			seq++;
			/* commit(), producer.c:314-317: store_release(tail) */
			STORE(PROD, A_TAIL, seq);
			wake_consumers()               /* producer.c:320 */
		fi
	od;
	/* shmring_producer_shutdown(), producer.c:180-182 */
	STORE(PROD, A_CLOSED, 1);                      /* producer.c:180 store_release(closed) */
	wake_consumers();                              /* producer.c:182 */
	finished++
}

proctype consumer(byte me)
{
	byte rpos = 0, t, d, v, now, x, i;
	do
	::	/* dead locals are reset, so that they do not split states */
		d = 0; v = 0; now = 0; x = 0;
		/* next_record(), consumer.c:310-323 */
		t = mem[A_TAIL];                       /* consumer.c:312 load_acquire(tail) */
		if
		:: t != rpos ->
			/* consumer.c:325-327 read the record at rpos; recv copies
			 * the payload, consumer.c:433 */
			d = mem[A_DATA0 + rpos % N];
			assert(d == rpos);             /* published, and not yet reused */
			rpos++;                        /* take(), consumer.c:347 */
			/* release(), consumer.c:369 store_release(slot->pos) */
			STORE(me, A_CUR0 + me, rpos);
			/* wake_producer(), wait.c:134-146 (consumer.c:371) */
			FENCE(me);                     /* wait.c:138 fence_full() */
			if
			:: mem[A_PWAIT] != 0 ->        /* wait.c:139 load_relaxed(prod_waiting) */
				atomic {               /* wait.c:142 exchange(prod_waiting, 0) */
					len(sb[me]) == 0 -> x = mem[A_PWAIT]; mem[A_PWAIT] = 0
				}
				if
				:: x != 0 ->
					RMW_ADD(me, A_PWS, 1);  /* wait.c:144 fetch_add(prod_wake_seq) */
					futex_wake(A_PWS)       /* wait.c:145 futex_wake(1) */
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: else ->
			if
			:: mem[A_CLOSED] != 0 ->       /* consumer.c:317 load_acquire(closed) */
				t = mem[A_TAIL];       /* consumer.c:319 re-read tail */
				if
				:: t == rpos -> break  /* consumer.c:321 -EPIPE: done */
				:: else -> skip
				fi
			:: else ->
				/* -EAGAIN: shmring_recv_batch_wait(), consumer.c:546-557,
				 * calls wait_for_data(), wait.c:168-212 (after the spin
				 * phase, which only re-checks ready()). */
				v = mem[A_WS];         /* wait.c:188 load_acquire(wake_seq) */
				RMW_ADD(me, A_SLEEPERS, 1);  /* wait.c:191 fetch_add(sleepers) */
				FENCE(me);             /* wait.c:192 fence_full() */
				/* wait.c:193 ready() -> has_data(), wait.c:152 */
				now = (mem[A_TAIL] != rpos || mem[A_CLOSED] != 0);   /*@BUG-RECHECK@*/
				if
				:: !now -> futex_wait(me, A_WS, v)   /* wait.c:197 */
				:: else -> skip
				fi;
				RMW_ADD(me, A_SLEEPERS, 255) /* wait.c:198 fetch_sub(sleepers) */
				/* wait.c:201-202 return 0 if ready, else loop: our
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
