/* Test probe for the sandbox: tries calls the default seccomp filter denies and
 * prints "<name> <errno>" per call (0 = the call succeeded). Built with
 * gcc -static by the tests and copied into the test rootfs as /bin/sc-probe. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long rc) { printf("%s %d\n", name, rc < 0 ? errno : 0); }

int main(void) {
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 1));
    report("ptrace", syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    report("init_module", syscall(SYS_init_module, 0, 0, ""));
    report("mount", mount("none", "/tmp", "tmpfs", 0, 0));
    report("unshare", unshare(CLONE_NEWUTS));
    report("getppid", getppid() >= 0 ? 0 : -1);
    return 0;
}
