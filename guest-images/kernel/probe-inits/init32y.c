/* 32-bit /init using the compat `syscall` instruction (AMD: how 32-bit tasks enter a
   64-bit kernel), the way vdso32's __kernel_vsyscall does: ecx stashed in ebp. */
static const char msg[] = "@@bootlab init-start\nhi from 32-bit user space (syscall32)\n@@bootlab done\n";
static long sys3(long nr, long a, long b, long c) {
    long r;
    __asm__ volatile("call 1f\n\tjmp 2f\n"
                     "1:\tpush %%ecx\n\tpush %%edx\n\tpush %%ebp\n\tmovl %%ecx, %%ebp\n\tsyscall\n"
                     "2:\n"
                     : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}
void _start(void) {
    sys3(4, 1, (long)msg, sizeof(msg)-1);
    sys3(88, 0xfee1dead, 672274793, 0x4321fedc);
    for(;;) __asm__ volatile("pause");
}
