#ifndef BERTH_PLAN_H
#define BERTH_PLAN_H

/*
 * berth_run_plan reads the container's setup plan from the socket fd, executes it and execs
 * the user's program. It never returns.
 */
void berth_run_plan(int fd) __attribute__((noreturn));

#endif
