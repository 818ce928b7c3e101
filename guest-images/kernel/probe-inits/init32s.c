/* 32-bit /init using sysenter the way vdso32's __kernel_vsyscall does (the
   kernel returns to the vdso landing pad, which pops ebp, edx, ecx and rets). */
static const char msg[] = "@@bootlab init-start\nhi from 32-bit user space (sysenter)\n@@bootlab done\n";
static long sys3(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("call 1f\n\tjmp 2f\n"
                     "1:\tpush %%ecx\n\tpush %%edx\n\tpush %%ebp\n\tmovl %%esp, %%ebp\n\tsysenter\n"
                     "2:\n"
                     : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
void _start(void) {
    sys3(4, 1, (long)msg, sizeof(msg)-1);
    sys3(88, 0xfee1dead, 672274793, 0x4321fedc);
    for(;;) __asm__ volatile("pause");
}
