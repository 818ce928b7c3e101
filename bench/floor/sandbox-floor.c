/*
 * sandbox-floor: the least a namespace sandbox does, as a yardstick for the bench.
 *
 *   sandbox-floor ROOTFS PROGRAM [ARGS...]
 *
 * One clone(2) with the six namespaces that `bootlab sandbox run` makes as root
 * (mount, pid, uts, ipc, net, cgroup; `bwrap --unshare-all` makes the same, plus a
 * user namespace where it can), then in the child: the mount tree made private,
 * ROOTFS bind-mounted and made the root with pivot_root(".", "."), the old root
 * detached, a new procfs, the root remounted read-only, the hostname set, and
 * execve. Nothing else: no /dev, no /tmp, no loopback, no cgroup,
 * no capability or seccomp set-up, no error reporting beyond a message. The
 * parent waits and exits with the child's status. It is static and written
 * against glibc, like bootlab itself, so the gap between the two is what bootlab
 * does on top, not how its process starts. Root only.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char *rootfs;
static char **workload;

static void die(const char *what)
{
	perror(what);
	_exit(127);
}

static int child(void *unused)
{
	(void)unused;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die("sandbox-floor: making / private");
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL))
		die("sandbox-floor: bind-mounting the rootfs");
	if (chdir(rootfs))
		die("sandbox-floor: chdir to the rootfs");
	if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die("sandbox-floor: mounting /proc");
	if (syscall(SYS_pivot_root, ".", "."))
		die("sandbox-floor: pivot_root");
	if (umount2(".", MNT_DETACH))
		die("sandbox-floor: detaching the old root");
	if (chdir("/"))
		die("sandbox-floor: chdir /");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL))
		die("sandbox-floor: remounting / read-only");
	if (sethostname("floor", 5))
		die("sandbox-floor: sethostname");
	execv(workload[0], workload);
	die("sandbox-floor: execv");
	return 127;
}

int main(int argc, char **argv)
{
	static char stack[64 * 1024];
	int status;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: sandbox-floor ROOTFS PROGRAM [ARGS...]\n");
		return 2;
	}
	rootfs = argv[1];
	workload = argv + 2;
	pid = clone(child, stack + sizeof(stack),
		    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
			    CLONE_NEWNET | CLONE_NEWCGROUP | SIGCHLD,
		    NULL);
	if (pid < 0)
		die("sandbox-floor: clone");
	if (waitpid(pid, &status, 0) < 0)
		die("sandbox-floor: waitpid");
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
