static const char msg[] = "@@bootlab init-start\nhi from 32-bit user space (int80)\n@@bootlab done\n";
void _start(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(4), "b"(1), "c"(msg), "d"(sizeof(msg)-1) : "memory");
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(88), "b"(0xfee1dead), "c"(672274793), "d"(0x4321fedc) : "memory");
    for(;;) __asm__ volatile("pause");
}
