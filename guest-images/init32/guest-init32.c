/*
 * guest-init32: the 32-bit (i386) twin of guest-init (guest-images/init), for the
 * emulated /dev/kvm (kvm_pvm running a non-PVM guest). There a 64-bit task cannot
 * make a system call at all; a 32-bit task can, through `sysenter`, when the guest
 * CPU claims to be Intel (guest-images/kernel/EMULATED-USERSPACE.md). Rust has no
 * i686 target on this machine, hence C: no libc, `gcc -m32 -static -nostdlib`.
 *
 * Same contract as guest-init (guest-images/README.md):
 *   - As PID 1 of a VM (PID 1 and /proc not mounted yet): prints
 *     `@@bootlab init-start`, mounts /proc, /sys, /dev, reads
 *     `bootlab.workload=NAME_OR_PATH` (default: built-in `hello`),
 *     `bootlab.args=a,b` and `bootlab.exit=reboot|poweroff` from /proc/cmdline,
 *     with `bootlab.ip=ADDR/PREFIX` gives eth0 that IPv4 address and brings it up,
 *     with `bootlab.snapshot` prints `@@bootlab snapshot`, waits for the console to
 *     drain and writes the snapshot marker to the port (the monitor saves the
 *     machine there), prints `@@bootlab exec`, runs the workload (fork + execve with a PATH search),
 *     prints `@@bootlab done`, waits for the console to drain, writes the exit
 *     status to the exit port (0x501) when ioperm grants it, and calls reboot(2).
 *     Each marker also goes as one byte to the marker port (0x0b1a) when granted.
 *   - Otherwise (`guest-init32 [WORKLOAD [ARGS...]]`): the same three console
 *     markers around the workload, no ports, no mounts; exits with its status.
 *   - Run as `hello` (argv[0]'s last component, e.g. a /bin/hello link): prints
 *     the hello line and exits 0, so a VM can also exec a separate hello process.
 *
 * System calls go through the vDSO's __kernel_vsyscall (auxv AT_SYSINFO), as i386
 * libcs do: the kernel patches it to `sysenter` on Intel CPUs, `syscall` on AMD
 * ones; `int $0x80` only without a vDSO.
 */

typedef unsigned int u32;
typedef unsigned char u8;

/* i386 system call numbers (arch/x86/entry/syscalls/syscall_32.tbl). */
enum {
	NR_exit = 1, NR_fork = 2, NR_write = 4, NR_execve = 11, NR_getpid = 20,
	NR_mount = 21, NR_access = 33, NR_sync = 36, NR_ioctl = 54, NR_reboot = 88,
	NR_ioperm = 101, NR_wait4 = 114, NR_read = 3, NR_open = 5, NR_close = 6,
	NR_sched_yield = 158, NR_socket = 359,
};
/* eth0's address: socket(AF_INET, SOCK_DGRAM) and the ioctls of
   uapi/linux/sockios.h on a 32-byte struct ifreq (16-byte name, then a
   sockaddr_in or the flags), IFF_UP of uapi/linux/if.h. */
#define AF_INET 2
#define SOCK_DGRAM 2
#define SIOCGIFFLAGS 0x8913
#define SIOCSIFFLAGS 0x8914
#define SIOCSIFADDR 0x8916
#define SIOCSIFNETMASK 0x891c
#define IFF_UP 1
/* auxv tag of the vDSO system call entry point. */
#define AT_SYSINFO 32
/* reboot(2) magic numbers and commands. */
#define REBOOT_MAGIC1 0xfee1deadu
#define REBOOT_MAGIC2 672274793u
#define REBOOT_CMD_RESTART 0x01234567u
#define REBOOT_CMD_POWER_OFF 0x4321fedcu
/* ioctl: wait until the tty has sent its output (tcdrain). */
#define TCSBRK 0x5409
/* The marker protocol (timeline/src/marker.rs). */
#define MARKER_PORT 0x0b1a
#define EXIT_PORT 0x501
#define EXIT_NOT_RUN 127

static const char HELLO_LINE[] = "hello from bootlab guest-init\n";
static const char DEFAULT_PATH[] = "/sbin:/bin:/usr/sbin:/usr/bin";

/* __kernel_vsyscall, or 0: use int $0x80. */
static u32 vsyscall;

static long sys5(long nr, long a, long b, long c, long d, long e)
{
	long r;
	if (vsyscall)
		__asm__ volatile("call *%[fn]"
				 : "=a"(r)
				 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e),
				   [fn] "m"(vsyscall)
				 : "memory", "cc");
	else
		__asm__ volatile("int $0x80"
				 : "=a"(r)
				 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
				 : "memory", "cc");
	return r;
}
#define sys3(nr, a, b, c) sys5(nr, (long)(a), (long)(b), (long)(c), 0, 0)

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, u32 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}
void *memcpy(void *d, const void *s, u32 n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static u32 len(const char *s)
{
	u32 n = 0;
	while (s[n])
		n++;
	return n;
}

static int eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* `s` starts with `prefix`: the rest, else 0. */
static const char *after(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return s;
}

static void write_all(int fd, const char *s, u32 n)
{
	while (n) {
		long w = sys3(NR_write, fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (u32)w;
	}
}
static void put(int fd, const char *s) { write_all(fd, s, len(s)); }
static void warn(const char *a, const char *b)
{
	put(2, "guest-init32: ");
	put(2, a);
	put(2, b);
	put(2, "\n");
}
static int ports; /* ioperm granted MARKER_PORT and EXIT_PORT */

static void outb(unsigned short port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void announce(const char *event, u8 code)
{
	char line[32] = "@@bootlab ";
	u32 n = len(line);
	if (ports)
		outb(MARKER_PORT, code);
	while (*event)
		line[n++] = *event++;
	line[n++] = '\n';
	write_all(1, line, n);
}

/* What to run. */
#define MAX_ARGS 32
struct spec {
	const char *workload; /* 0 = built-in hello */
	const char *args[MAX_ARGS + 1];
	int poweroff;
	int snapshot; /* bootlab.snapshot: announce the snapshot point */
	int has_ip;   /* bootlab.ip=ADDR/PREFIX parsed into ip, prefix */
	u8 ip[4];
	u32 prefix;
};

static char cmdline_buf[4096];
static char args_buf[4096];

/* Splits `s` at commas into spec->args (in place, in args_buf). */
static void split_args(struct spec *sp, const char *s)
{
	u32 n = len(s), i, k = 0;
	if (n >= sizeof(args_buf))
		n = sizeof(args_buf) - 1;
	memcpy(args_buf, s, n);
	args_buf[n] = 0;
	if (!n) {
		sp->args[0] = 0;
		return;
	}
	sp->args[k++] = args_buf;
	for (i = 0; i < n && k < MAX_ARGS; i++)
		if (args_buf[i] == ',') {
			args_buf[i] = 0;
			sp->args[k++] = &args_buf[i + 1];
		}
	sp->args[k] = 0;
}

/* `A.B.C.D/P` (P from 1 to 32) into sp->ip and sp->prefix; 1 if it parsed. */
static int parse_ip(struct spec *sp, const char *v)
{
	u32 part = 0, n = 0, digits = 0;
	for (;; v++) {
		if (*v >= '0' && *v <= '9') {
			part = part * 10 + (u32)(*v - '0');
			if (++digits > 3)
				return 0;
		} else if (digits && n < 3 && *v == '.' && part < 256) {
			sp->ip[n++] = (u8)part;
			part = digits = 0;
		} else if (digits && n == 3 && *v == '/' && part < 256) {
			sp->ip[n++] = (u8)part;
			part = digits = 0;
		} else if (digits && n == 4 && !*v) {
			sp->prefix = part;
			return part >= 1 && part <= 32;
		} else {
			return 0;
		}
	}
}

/* bootlab.* from the kernel command line: whitespace separates, double quotes
   group and are dropped, `--` ends the kernel's part, the last one wins. */
static void parse_cmdline(struct spec *sp, char *s)
{
	const char *v;
	while (*s) {
		char *p = s, *o = s;
		int quoted = 0;
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++, p++, o++;
		if (!*s)
			break;
		while (*s && (quoted || (*s != ' ' && *s != '\t' && *s != '\n'))) {
			if (*s == '"')
				quoted = !quoted;
			else
				*o++ = *s;
			s++;
		}
		if (*s)
			s++;
		*o = 0;
		if (eq(p, "--"))
			break;
		if ((v = after(p, "bootlab.workload=")))
			sp->workload = (*v && !eq(v, "hello")) ? v : 0;
		else if ((v = after(p, "bootlab.args=")))
			split_args(sp, v);
		else if ((v = after(p, "bootlab.exit=")))
			sp->poweroff = eq(v, "poweroff");
		else if (eq(p, "bootlab.snapshot"))
			sp->snapshot = 1;
		else if ((v = after(p, "bootlab.ip=")))
			sp->has_ip = parse_ip(sp, v);
	}
}

/* Gives eth0 the address of `sp` and brings it up; 0 on success. */
static int eth0_up(const struct spec *sp)
{
	u8 req[32] = { 'e', 't', 'h', '0' };
	u32 mask = sp->prefix ? 0xffffffffu << (32 - sp->prefix) : 0;
	long fd = sys3(NR_socket, AF_INET, SOCK_DGRAM, 0);
	int rc = -1, i;
	if (fd < 0)
		return -1;
	req[16] = AF_INET;
	memcpy(req + 20, sp->ip, 4);
	if (sys3(NR_ioctl, fd, SIOCSIFADDR, (long)req) < 0)
		goto out;
	for (i = 0; i < 4; i++)
		req[20 + i] = (u8)(mask >> (24 - 8 * i));
	if (sys3(NR_ioctl, fd, SIOCSIFNETMASK, (long)req) < 0)
		goto out;
	if (sys3(NR_ioctl, fd, SIOCGIFFLAGS, (long)req) < 0)
		goto out;
	req[16] |= IFF_UP;
	rc = sys3(NR_ioctl, fd, SIOCSIFFLAGS, (long)req) < 0 ? -1 : 0;
out:
	sys3(NR_close, fd, 0, 0);
	return rc;
}

/* Runs `prog` with `args` in a child: PATH search unless it has a '/'. */
static u8 run_program(const char *prog, const char *const *args, char **envp)
{
	static char path_buf[512];
	static const char *argv[MAX_ARGS + 2];
	const char *path = DEFAULT_PATH, *v;
	char **e;
	int i, status = 0;
	long pid;

	for (e = envp; *e; e++)
		if ((v = after(*e, "PATH=")))
			path = v;
	argv[0] = prog;
	for (i = 0; args[i] && i < MAX_ARGS; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = 0;

	pid = sys3(NR_fork, 0, 0, 0);
	if (pid < 0) {
		warn("fork failed: ", prog);
		return EXIT_NOT_RUN;
	}
	if (pid == 0) {
		const char *p;
		for (p = prog; *p && *p != '/'; p++)
			;
		if (*p) {
			sys3(NR_execve, prog, argv, envp);
		} else {
			const char *d = path;
			while (*d || d == path) {
				u32 n = 0, m = len(prog);
				while (d[n] && d[n] != ':')
					n++;
				if (n + m + 2 < sizeof(path_buf)) {
					if (n) {
						memcpy(path_buf, d, n);
					} else {
						path_buf[0] = '.';
						n = 1;
					}
					path_buf[n] = '/';
					memcpy(path_buf + n + 1, prog, m + 1);
					sys3(NR_execve, path_buf, argv, envp);
				}
				d += n;
				if (!*d)
					break;
				d++;
			}
		}
		warn("cannot execute ", prog);
		sys3(NR_exit, EXIT_NOT_RUN, 0, 0);
	}
	if (sys3(NR_wait4, pid, &status, 0) < 0) {
		warn("wait4 failed for ", prog);
		return EXIT_NOT_RUN;
	}
	if ((status & 0x7f) == 0)
		return (u8)((status >> 8) & 0xff); /* exited */
	return (u8)(128 + (status & 0x7f)); /* killed by a signal */
}

/* The snapshot point: the console line first, drained, then the port write at
   which the monitor saves the machine, so a restored run resumes with an idle
   console right before the workload. */
static void announce_snapshot(void)
{
	put(1, "@@bootlab snapshot\n");
	sys3(NR_ioctl, 1, TCSBRK, 1);
	if (ports)
		outb(MARKER_PORT, 4);
}

static u8 run_workload(const struct spec *sp, char **envp)
{
	u8 code;
	announce("exec", 2);
	if (!sp->workload) {
		put(1, HELLO_LINE);
		code = 0;
	} else {
		code = run_program(sp->workload, sp->args, envp);
	}
	announce("done", 3);
	return code;
}

static int proc_mounted(void)
{
	return sys3(NR_access, "/proc/self/stat", 0, 0) == 0;
}

static char *envp_buf[64];

/* envp with PATH=DEFAULT_PATH added when missing (the kernel gives none). */
static char **with_default_path(char **envp)
{
	static char path_entry[] = "PATH=/sbin:/bin:/usr/sbin:/usr/bin";
	int n = 0, has = 0;
	for (; envp[n] && n < 62; n++) {
		envp_buf[n] = envp[n];
		if (after(envp[n], "PATH="))
			has = 1;
	}
	if (!has)
		envp_buf[n++] = path_entry;
	envp_buf[n] = 0;
	return envp_buf;
}

static void __attribute__((noreturn)) vm_main(char **envp)
{
	static const char *const mounts[3][2] = {
		{ "proc", "/proc" }, { "sysfs", "/sys" }, { "devtmpfs", "/dev" },
	};
	struct spec sp = { 0 };
	long fd, n, got = 0;
	u8 code;
	int i;

	ports = sys3(NR_ioperm, MARKER_PORT, 1, 1) == 0 && sys3(NR_ioperm, EXIT_PORT, 1, 1) == 0;
	announce("init-start", 1);
	for (i = 0; i < 3; i++)
		if (sys5(NR_mount, (long)mounts[i][0], (long)mounts[i][1], (long)mounts[i][0], 0, 0) < 0)
			warn("mount failed: ", mounts[i][1]);
	envp = with_default_path(envp);
	fd = sys3(NR_open, "/proc/cmdline", 0, 0);
	if (fd >= 0) {
		while (got < (long)sizeof(cmdline_buf) - 1 &&
		       (n = sys3(NR_read, fd, cmdline_buf + got, sizeof(cmdline_buf) - 1 - got)) > 0)
			got += n;
		sys3(NR_close, fd, 0, 0);
	} else {
		warn("cannot read /proc/cmdline; running ", "hello");
	}
	cmdline_buf[got > 0 ? got : 0] = 0;
	parse_cmdline(&sp, cmdline_buf);
	if (sp.has_ip && eth0_up(&sp) != 0)
		warn("bringing eth0 up failed", "");
	if (sp.snapshot)
		announce_snapshot();
	code = run_workload(&sp, envp);
	/* The console is interrupt-driven: let it send the last lines first. */
	sys3(NR_ioctl, 1, TCSBRK, 1);
	if (ports)
		outb(EXIT_PORT, code);
	sys3(NR_sync, 0, 0, 0);
	sys5(NR_reboot, (long)REBOOT_MAGIC1, (long)REBOOT_MAGIC2,
	     (long)(sp.poweroff ? REBOOT_CMD_POWER_OFF : REBOOT_CMD_RESTART), 0, 0);
	warn("reboot failed", "");
	for (;;)
		sys3(NR_sched_yield, 0, 0, 0);
}

static const char USAGE[] =
	"usage: guest-init32 [WORKLOAD [ARGS...]]\n"
	"WORKLOAD: `hello` (built-in, default) or a program path/name.\n"
	"Prints the @@bootlab markers init-start, exec, done around it and exits\n"
	"with its status. As PID 1 of a VM it reads bootlab.workload=,\n"
	"bootlab.args=a,b, bootlab.exit=reboot|poweroff and bootlab.ip=ADDR/PREFIX\n"
	"(eth0) from /proc/cmdline.\n";

static u8 host_main(int argc, char **argv, char **envp)
{
	struct spec sp = { 0 };
	int i;
	if (argc > 1 && (eq(argv[1], "-h") || eq(argv[1], "--help"))) {
		put(1, USAGE);
		return 0;
	}
	announce("init-start", 1);
	if (argc > 1 && !eq(argv[1], "hello"))
		sp.workload = argv[1];
	for (i = 2; i < argc && i - 2 < MAX_ARGS; i++)
		sp.args[i - 2] = argv[i];
	return run_workload(&sp, envp);
}

/* Entry from _start: sp points at argc, argv..., 0, envp..., 0, auxv. */
__attribute__((force_align_arg_pointer, noreturn, used)) void start_c(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	char **e = envp;
	const char *base = argv[0] ? argv[0] : "", *p;
	u32 *aux;

	while (*e)
		e++;
	for (aux = (u32 *)(e + 1); aux[0]; aux += 2)
		if (aux[0] == AT_SYSINFO)
			vsyscall = aux[1];
	for (p = base; *p; p++)
		if (*p == '/')
			base = p + 1;
	if (eq(base, "hello")) {
		put(1, HELLO_LINE);
		sys3(NR_exit, 0, 0, 0);
	}
	if (sys3(NR_getpid, 0, 0, 0) == 1 && !proc_mounted())
		vm_main(envp);
	sys3(NR_exit, host_main(argc, argv, envp), 0, 0);
	for (;;)
		;
}

__asm__(".globl _start\n"
	"_start:\n"
	"\txorl %ebp, %ebp\n"
	"\tmovl %esp, %eax\n"
	"\tpushl %eax\n"
	"\tcall start_c\n");
