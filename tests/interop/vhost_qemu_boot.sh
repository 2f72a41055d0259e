#!/usr/bin/env bash
# vhost_qemu_boot.sh: qemu itself as the frontend of `shunt vhost`: a TCG machine
# whose only disk is a vhost-user-blk-pci device on shunt vhost's socket (guest
# memory a shared memfd) boots from it.  Its firmware (SeaBIOS) negotiates the
# device, reads the boot sector through the virtqueue, and the boot sector prints
# a line on the serial port: so qemu's messages, memory table and rings all work.
# With 1 and 2 queues, and a read-only device.  No guest kernel needed; bounded by
# the time the firmware takes (the test waits at most 60 s for the line).
. "$(dirname "$0")/../lib.sh"
need_deps
command -v qemu-system-x86_64 >/dev/null || { tap_fail "qemu-system-x86_64 is installed"; tap_done; exit; }

# A boot sector that writes a line to COM1 and halts.
cat >"$T/boot.S" <<'ASM'
.code16
.globl _start
_start:
  cli
  xor %ax, %ax
  mov %ax, %ds
  mov $msg, %si
  mov $0x3f8, %dx
1: lodsb
  test %al, %al
  jz 2f
  out %al, %dx
  jmp 1b
2: hlt
  jmp 2b
msg: .asciz "SHUNT-VHOST-BOOTED\r\n"
.org 510
.byte 0x55, 0xaa
ASM
if ! { as --32 -o "$T/boot.o" "$T/boot.S" && ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o "$T/boot.bin" "$T/boot.o"; } >"$T/as.log" 2>&1; then
  tap_fail "the boot sector assembles"; cat "$T/as.log"; tap_done; exit
fi
img=$T/vm.img
truncate -s 64M "$img"
dd if="$T/boot.bin" of="$img" conv=notrunc status=none
want=$(sha256sum <"$img")

# boot NAME SPEC_OPTS QUEUES: serve the image, boot qemu from it, wait for the line.
boot() {
  local name=$1 opts=$2 queues=$3 sock=$T/$1.sock i ok=1
  "$SHUNT" vhost --threads 2 "$sock=$img$opts" >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!
  _cleanup_pids+=("$SHUNT_PID")
  wait_unix "$sock" 10 || { echo "shunt vhost did not start"; return 1; }
  qemu-system-x86_64 -machine accel=tcg -m 128 -nographic -no-reboot -monitor none -display none \
    -object memory-backend-memfd,id=mem,size=128M,share=on -numa node,memdev=mem \
    -chardev socket,id=vu,path="$sock" \
    -device vhost-user-blk-pci,chardev=vu,num-queues="$queues",bootindex=1 \
    -serial file:"$T/$name.serial" >"$T/$name.qemu" 2>&1 &
  local qpid=$!
  _cleanup_pids+=("$qpid")
  for ((i = 0; i < 600; i++)); do
    grep -qa SHUNT-VHOST-BOOTED "$T/$name.serial" 2>/dev/null && { ok=0; break; }
    kill -0 "$qpid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
  [ $ok -eq 0 ] || { echo "# serial:"; tr -d '\0' <"$T/$name.serial" | tail -5; echo "# qemu:"; tail -5 "$T/$name.qemu"; }
  return $ok
}

tap_check "qemu boots from shunt vhost (2 queues)" boot q2 ",queues=2" 2
tap_check "... shunt vhost is still running after qemu left" shunt_alive
tap_check "... and SIGTERM exits 0" stop_shunt_within 20
tap_check "qemu boots from shunt vhost (1 queue, datapath=copy)" boot q1 ",queues=1,datapath=copy" 1
tap_check "... and SIGTERM exits 0" stop_shunt_within 20
tap_check "qemu boots from a read-only shunt vhost device" boot ro ",ro" 1
tap_check "... and SIGTERM exits 0" stop_shunt_within 20
tap_check "the image is unchanged" bash -c "[ \"\$(sha256sum <'$img')\" = '$want' ]"
tap_check "no sanitizer report in the log" bash -c "! grep -qE 'Sanitizer|runtime error:' '$T/shunt.log'"
tap_finish
