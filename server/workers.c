/* workers.c - a small thread pool for work that would stall the event loop (argon2id).
 * Workers never touch libwebsockets or the store: they run job->work, put the job on the done
 * list and wake the loop, which then runs job->done on its own thread. */
#include "server.h"

#include <pthread.h>
#include <stdlib.h>

struct kz_workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct kz_job *todo_head, *todo_tail, *done_head, *done_tail;
    int queued, queue_max;
    bool stopping;
    void (*wake)(void *);
    void *wake_arg;
    int nthreads;
    pthread_t threads[];
};

static void push(struct kz_job **head, struct kz_job **tail, struct kz_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void *worker_main(void *arg)
{
    struct kz_workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->todo_head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping)
            break;
        struct kz_job *j = w->todo_head;
        w->todo_head = j->next;
        if (!w->todo_head)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->work(j);
        pthread_mutex_lock(&w->mu);
        push(&w->done_head, &w->done_tail, j);
        w->wake(w->wake_arg);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct kz_workers *kz_workers_start(int threads, int queue_max, void (*wake)(void *), void *arg)
{
    struct kz_workers *w = calloc(1, sizeof *w + (size_t)threads * sizeof(pthread_t));
    if (!w)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->queue_max = queue_max;
    w->wake = wake;
    w->wake_arg = arg;
    for (; w->nthreads < threads; w->nthreads++) {
        if (pthread_create(&w->threads[w->nthreads], NULL, worker_main, w) != 0) {
            kz_workers_stop(w);
            return NULL;
        }
    }
    return w;
}

bool kz_workers_submit(struct kz_workers *w, struct kz_job *job)
{
    pthread_mutex_lock(&w->mu);
    bool ok = w->queued < w->queue_max && !w->stopping;
    if (ok) {
        w->queued++;
        push(&w->todo_head, &w->todo_tail, job);
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return ok;
}

void kz_workers_drain(struct kz_workers *w)
{
    pthread_mutex_lock(&w->mu);
    struct kz_job *j = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        struct kz_job *next = j->next;
        pthread_mutex_lock(&w->mu);
        w->queued--;
        pthread_mutex_unlock(&w->mu);
        j->done(j, true);
        j = next;
    }
}

void kz_workers_stop(struct kz_workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    kz_workers_drain(w);
    for (struct kz_job *j = w->todo_head, *next; j; j = next) {
        next = j->next;
        j->done(j, false);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
