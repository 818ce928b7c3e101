/* 32-bit /init that makes MANY system calls through sysenter (as vdso32's
   __kernel_vsyscall does): 20 writes, getpid, fork + execve of itself as a
   child that prints and exits 7, wait4, then reboot. Checks that the return to
   user space after a system call works, not just the first entry. */
static long sys(long nr, long a, long b, long c, long d) {
    long r;
    __asm__ volatile("call 1f\n\tjmp 2f\n"
                     "1:\tpush %%ecx\n\tpush %%edx\n\tpush %%ebp\n\tmovl %%esp, %%ebp\n\tsysenter\n"
                     "2:\n"
                     : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d) : "memory");
    return r;
}
static unsigned len(const char *s) { unsigned n = 0; while (s[n]) n++; return n; }
static void put(const char *s) { sys(4, 1, (long)s, len(s), 0); }
static void putnum(long v) {
    char b[16]; int i = 15; b[i] = 0;
    if (v < 0) { put("-"); v = -v; }
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    put(b + i);
}
__attribute__((force_align_arg_pointer, noreturn))
void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    if (argc > 1 && argv[1][0] == 'c' && argv[1][1] == 'h' && argv[1][2] == 'i') {
        put("child: hello from the exec'd child, pid ");
        putnum(sys(20, 0, 0, 0, 0));
        put("\n");
        sys(1, 7, 0, 0, 0);
    }
    put("@@bootlab init-start\n");
    for (long i = 0; i < argc; i++) { put("argv: "); put(argv[i]); put("\n"); }
    for (int i = 0; i < 20; i++) { put("loop "); putnum(i); put("\n"); }
    put("getpid="); putnum(sys(20, 0, 0, 0, 0)); put("\n");
    put("@@bootlab exec\n");
    long pid = sys(2, 0, 0, 0, 0);
    if (pid == 0) {
        static char *cargv[] = { "/init", "child", 0 };
        static char *cenv[] = { 0 };
        long e = sys(11, (long)"/init", (long)cargv, (long)cenv, 0);
        put("execve failed "); putnum(e); put("\n");
        sys(1, 127, 0, 0, 0);
    }
    put("fork="); putnum(pid); put("\n");
    int status = 0;
    long w = sys(114, pid, (long)&status, 0, 0);
    put("wait4="); putnum(w); put(" status="); putnum(status); put("\n");
    put("@@bootlab done\n");
    sys(88, 0xfee1dead, 672274793, 0x01234567, 0); /* RB_AUTOBOOT */
    for (;;) __asm__ volatile("pause");
}
__asm__(".globl _start\n_start:\n\tmov %esp, %eax\n\tpush %eax\n\tcall start_c\n");
