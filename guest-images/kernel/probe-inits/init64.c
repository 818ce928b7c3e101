/* tiny /init: write "hi\n" with syscall, write to isa-debug-exit port not possible from user;
   then reboot(LINUX_REBOOT_CMD_POWER_OFF). */
static const char msg[] = "@@bootlab init-start\nhi from user space\n@@bootlab done\n";
void _start(void) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(1), "D"(1), "S"(msg), "d"(sizeof(msg)-1) : "rcx","r11","memory");
    __asm__ volatile("syscall" : "=a"(r) : "a"(169), "D"(0xfee1dead), "S"(672274793), "d"(0x4321fedc) : "rcx","r11","memory");
    for(;;) __asm__ volatile("pause");
}
