# bench/profile: buckets `perf script` samples of edge-host by what their
# stack is doing, so costs spread over many small symbols add up
# (first match wins, in this order).
BEGIN { RS = "" }
{
  total++
  s = $0
  split(s, lines, "\n"); top = lines[2]
  if (s ~ /StoreOpaque as core::ops::drop::Drop|deallocate_|decommit/) c = "instance teardown: pooling-allocator decommit (madvise, TLB-shootdown IPIs)"
  else if (s ~ /filesystem|open_ambient_dir|open_beneath|FileInputStream/) c = "WASI filesystem: preopened dir + open/stat/read of the rules file"
  else if (s ~ /blocking::pool|Condvar>::wait/) c = "tokio blocking-pool threads (parking, waking) serving those file calls"
  else if (s ~ /instantiate|Instantiator/) c = "instantiation"
  else if (s ~ /exc_page_fault/) c = "page faults in fresh instance memory"
  else if (top ~ /\.cwasm|perf-[0-9]+\.map|\[unknown\]/) c = "guest Wasm code (edge-cache)"
  else if (s ~ /key_value|KeyValue/) c = "key-value store host calls"
  else if (s ~ /wasi_http|field_map/) c = "wasi:http fields and bodies"
  else if (s ~ /outbound_http|hyper::client|hyper::proto::h1::role::Client/) c = "origin requests (pool, hyper client)"
  else if (s ~ /hyper::|mio::|tokio::net/) c = "HTTP serving (hyper, sockets)"
  else if (s ~ /HostFn|wasmtime_wasi|wasmtime::|spin_interfaces|edge_host::/) c = "other host and wasmtime work"
  else if (s ~ /futex|schedule/) c = "other thread wake-ups and context switches"
  else c = "other"
  n[c]++
}
END {
  for (c in n) printf "%5.1f%%  %s\n", 100 * n[c] / total, c | "sort -rn"
  close("sort -rn")
  printf "(%d samples)\n", total
}
