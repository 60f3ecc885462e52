-- SPEC §6 "Loading never executes code from a file" and the issue's "Bad input": broken and
-- hostile files made by tools/make_bad_files.py. Each must raise a Lua error that names
-- moontorch.load, the file and the problem, within 2 seconds, without running any payload
-- (those would create DIR/pwned_* files), without crashing, and within the file's size + 64 MB
-- of memory: each file is loaded (copying and mapped) in a child process of its own, whose
-- peak RSS (VmHWM) over that of a child that only loaded moontorch is the measure. The whole
-- table also runs in one child limited to 1.5 GB of address space.
-- The matrix covers the kinds issue 9 names: memo abuse (missing, huge and self-containing
-- entries, shared-reference bombs), 100,000-deep nesting (lists, MARKs, tuples; 30,000 dicts),
-- negative strides, views and offsets past their storage, duplicate zip entries, overlapping
-- entries, `../` entry and record names, non-UTF-8 safetensors headers.
local H = require "spec.helpers"
local torch = H.torch

local source_dir = os.getenv("MT_SOURCE_DIR") or "."
local generator = source_dir .. "/tools/make_bad_files.py"

-- file, keywords of the problem (any one of them, Lua patterns, case-insensitive), and
-- optionally `all`: keywords that must all appear.
local cases = {
  -- the container
  { "empty.pt", { "empty", "zip", "too short", "too small", "truncated" } },
  { "not_zip.pt", { "not a zip", "zip" } },
  { "png.pt", { "zip" } },
  { "truncated_half.pt", { "zip", "truncated", "corrupt", "central directory", "damaged" } },
  { "truncated_header.pt", { "zip", "truncated", "corrupt", "central directory", "damaged" } },
  { "truncated_no_eocd.pt", { "zip", "truncated", "corrupt", "central directory", "damaged" } },
  { "bitflip_pickle_global.pt", { "crc", "checksum", "corrupt", "not allowed" } },
  { "bitflip_pickle_key.pt", { "crc", "checksum", "corrupt" } },
  { "bitflip_central_dir.pt", { "zip", "corrupt", "inconsistent", "central directory", "damaged", "crc" } },
  { "bitflip_eocd_count.pt", { "zip", "corrupt", "inconsistent", "central directory", "damaged", "entries" } },
  { "missing_data_pkl.pt", { "missing", "no ", "not found" }, all = { "data%.pkl" } },
  { "missing_record.pt", { "missing", "no ", "not found" }, all = { "data/1" } },
  { "short_record.pt", { "bytes" }, all = { "data/0", "12", "16" } },
  { "long_record.pt", { "bytes" }, all = { "data/0", "20", "16" } },
  { "wrong_storage_size.pt", { "bytes" }, all = { "data/0", "16", "4000" } },
  { "deflate_past_size.pt", { "inflat", "size", "compress", "larger", "exceed", "past", "crc" }, all = { "data/0" } },
  { "deflate_lies_4gb.pt", { "inflat", "size", "compress", "short", "ratio", "truncat", "crc" }, all = { "data/0" } },
  { "duplicate_entry.pt", { "duplicate" } },
  { "dotdot_name.pt", { "%.%." } },
  { "dotdot_first.pt", { "%.%." }, all = { "unsafe" } },
  { "dotdot_record_key.pt", { "missing" }, all = { "%.%./%.%./0" } },
  { "duplicate_record.pt", { "duplicate" }, all = { "archive/data/0" } },
  { "overlapping_entries.pt", { "overlap", "disagree" } },
  { "absolute_name.pt", { "absolute", "/etc/evil" } },
  { "backslash_name.pt", { "backslash", "\\" } },
  { "byteorder_big.pt", { "byteorder", "byte order", "endian" }, all = { "big" } },
  { "version_99.pt", { "version" }, all = { "99" } },
  -- hostile pickles: each names the global it refuses
  { "os_system.pt", { "not allowed" }, all = { "os%.system" } },
  { "posix_system.pt", { "not allowed" }, all = { "posix%.system" } },
  { "nt_system.pt", { "not allowed" }, all = { "nt%.system" } },
  { "builtins_eval.pt", { "not allowed" }, all = { "builtins%.eval" } },
  { "builtins_exec.pt", { "not allowed" }, all = { "builtins%.exec" } },
  { "py2_builtin_eval.pt", { "not allowed" }, all = { "__builtin__%.eval" } },
  { "builtins_getattr.pt", { "not allowed" }, all = { "builtins%.getattr" } },
  { "subprocess_popen.pt", { "not allowed" }, all = { "subprocess%.popen" } },
  { "torch_load.pt", { "not allowed" }, all = { "torch%.load" } },
  { "hidden_in_state_dict.pt", { "not allowed" }, all = { "os%.system" } },
  { "stack_global.pt", { "0x93", "stack_global", "147", "'os%.system' is not allowed" } },
  { "inst_opcode.pt", { "0x69", "'i'", "inst", "105" } },
  { "unknown_opcode.pt", { "0xff", "255" } },
  { "deep_nesting.pt", { "deep", "depth", "nest", "stack" } },
  { "deep_marks.pt", { "deep", "depth", "nest", "mark", "stack" } },
  { "memo_missing.pt", { "memo" } },
  { "memo_huge_index.pt", { "memo" } },
  { "memo_put_huge_index.pt", { "memo" }, all = { "4294967295" } },
  { "memo_bomb.pt", { "memo" }, all = { "expand" } },
  { "memo_bomb_tensors.pt", { "memo" }, all = { "expand" } },
  { "memo_self_containing.pt", { "contains itself" } },
  { "deep_dicts.pt", { "deep", "depth", "nest" } },
  { "deep_tuples.pt", { "deep", "depth", "nest" } },
  { "setitem_on_list.pt", { "setitem", "not a dict" } },
  { "append_on_dict.pt", { "append", "not a list" } },
  { "build_on_list.pt", { "build" } },
  { "reduce_non_callable.pt", { "reduce", "call" } },
  { "list_as_key.pt", { "key" } },
  { "stack_underflow.pt", { "stack", "empty", "underflow" } },
  { "empty_stack_at_stop.pt", { "stack", "empty", "nothing" } },
  { "no_stop.pt", { "stop", "end", "truncat" } },
  { "truncated_pickle.pt", { "stop", "end", "truncat" } },
  { "truncated_in_global.pt", { "end", "truncat", "line" } },
  { "truncated_in_string.pt", { "end", "truncat", "past" } },
  { "string_past_end.pt", { "end", "truncat", "past", "length", "exceed", "bytes" } },
  { "int_too_large.pt", { "integer", "int64", "range", "large", "overflow" } },
  { "codecs_not_latin1.pt", { "latin", "encoding", "rot13" } },
  -- tensors and storages
  { "view_past_storage.pt", { "bound", "range", "outside", "exceed", "past", "beyond", "too small", "element" } },
  { "offset_past_storage.pt", { "bound", "range", "outside", "exceed", "past", "beyond", "too small", "element" } },
  { "negative_stride.pt", { "stride", "negative" } },
  { "negative_stride_2d.pt", { "stride" }, all = { "negative" } },
  { "view_past_storage_2d.pt", { "storage" }, all = { "element 4" } },
  { "offset_int64_max.pt", { "storage" }, all = { "9223372036854775807" } },
  { "negative_size.pt", { "size", "negative", "shape" } },
  { "negative_offset.pt", { "offset", "negative" } },
  { "nine_dims.pt", { "dim" } },
  { "size_overflow.pt", { "overflow", "bound", "range", "large", "exceed", "impossible", "too many" } },
  { "storage_class_mismatch.pt", { "class", "dtype", "mismatch", "longstorage" } },
  { "unknown_storage_class.pt", { "not allowed", "unknown", "unsupported" }, all = { "ComplexFloatStorage" } },
  { "persid_not_storage.pt", { "persistent", "storage" } },
  { "persid_not_tuple.pt", { "persistent", "storage", "tuple" } },
  { "negative_numel.pt", { "numel", "negative", "size", "element" } },
  { "rebuild_bad_args.pt", { "_rebuild_tensor_v2", "argument", "expected" } },
  -- safetensors
  { "st_empty.safetensors", { "empty", "header", "short", "truncat", "small" } },
  { "st_short_length.safetensors", { "empty", "header", "short", "truncat", "small" } },
  { "st_huge_header.safetensors", { "header" } },
  { "st_header_over_limit.safetensors", { "header" } },
  { "st_header_past_eof.safetensors", { "header" } },
  { "st_non_utf8.safetensors", { "utf" } },
  { "st_utf8_overlong.safetensors", { "utf%-8" } },
  { "st_utf8_surrogate.safetensors", { "utf%-8" } },
  { "st_latin1_metadata.safetensors", { "utf%-8" } },
  { "st_bad_json.safetensors", { "json" } },
  { "st_not_object.safetensors", { "object", "json" } },
  { "st_unknown_dtype.safetensors", { "dtype" }, all = { "Q9" } },
  { "st_unsupported_u16.safetensors", { "unsupported", "not supported" }, all = { "U16" } },
  { "st_unsupported_f8.safetensors", { "unsupported", "not supported" }, all = { "F8_E4M3" } },
  { "st_overlap.safetensors", { "overlap", "offset" } },
  { "st_gap.safetensors", { "gap", "offset" } },
  { "st_size_mismatch.safetensors", { "size", "bytes", "offset", "shape" } },
  { "st_shape_overflow.safetensors", { "overflow", "too large", "shape" } },
  { "st_negative_shape.safetensors", { "shape", "negative" } },
  { "st_trailing_bytes.safetensors", { "trailing", "size", "length", "buffer", "extra", "bytes" } },
  { "st_data_truncated.safetensors", { "truncat", "size", "buffer", "end", "short", "bytes", "past" } },
  { "st_offsets_reversed.safetensors", { "offset" } },
  { "st_metadata_not_string.safetensors", { "metadata" } },
  { "st_entry_no_offsets.safetensors", { "data_offsets" } },
}

local function wall()
  local f = assert(io.open("/proc/uptime", "r"))
  local t = f:read("n")
  f:close()
  return t
end

local function listdir(path)
  local names = {}
  local p = assert(io.popen("ls -A " .. H.shquote(path)))
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  return names
end

local function read_bytes(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Replaces every plain occurrence of `what` in s (file names contain words like "empty").
local function without(s, what)
  local out, i = {}, 1
  while true do
    local a, b = s:find(what, i, true)
    if not a then break end
    out[#out + 1] = s:sub(i, a - 1) .. "<file>"
    i = b + 1
  end
  return table.concat(out) .. s:sub(i)
end

-- Checks one error message against a case: names the function, the file, the problem (the
-- keywords are looked for outside the file's name).
local function check_message(err, fname, path, c)
  assert(err:find(fname, 1, true), "the error does not name " .. fname .. ": " .. err)
  assert(err:find(path, 1, true), "the error does not name the file " .. path .. ": " .. err)
  local low = without(err, path):lower()
  local rep = err:match("[%w%._/]+: ") and err:match("([%w%._/]+): %1: ")
  assert(not rep, "the error repeats '" .. tostring(rep) .. ": ': " .. err)
  local hit = false
  for _, k in ipairs(c[2]) do
    if low:find(k:lower()) then hit = true break end
  end
  assert(hit, "the error does not state the problem (" .. table.concat(c[2], " | ") .. "): " .. err)
  for _, k in ipairs(c.all or {}) do
    assert(low:find(k:lower()), "the error does not mention '" .. k .. "': " .. err)
  end
end

describe("broken and hostile files", function()
  local dir, setup_err

  lazy_setup(function()
    local p = assert(io.popen("mktemp -d /tmp/moontorch-bad.XXXXXX"))
    dir = p:read("l")
    p:close()
    local f = io.popen("/usr/bin/python3 " .. H.shquote(generator) .. " " .. H.shquote(dir) .. " 2>&1")
    local out = f:read("a")
    if not f:close() then setup_err = "tools/make_bad_files.py failed:\n" .. out end
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.shquote(dir)) end
  end)

  local function pwned()
    local l = {}
    for _, n in ipairs(listdir(dir)) do if n:match("^pwned") then l[#l + 1] = n end end
    return l
  end

  it("has at least 40 cases, and their intact originals load", function()
    assert(not setup_err, setup_err)
    assert.is_true(#cases >= 40)
    local good = torch.load(dir .. "/good.pt")
    H.assert_values(good.w, { 1, 2, 3, 4 })
    H.assert_values(good.b, { 1, 2 })
    local t, meta = torch.load(dir .. "/good.safetensors")
    H.assert_values(t.a, { 1, 2, 3, 4 })
    H.assert_values(t.b, { 1, 2 })
    assert.are.same({ k = "v" }, meta)
    for _, c in ipairs(cases) do
      local f = io.open(dir .. "/" .. c[1], "rb")
      assert(f, c[1] .. " was not generated")
      f:close()
    end
  end)

  it("the nesting cases really nest 100,000 levels (30,000 for dicts)", function()
    assert(not setup_err, setup_err)
    -- The pickles are stored, not deflated: their opcodes can be counted in the file.
    for name, want in pairs({ ["deep_nesting.pt"] = { "]", 100000 }, ["deep_marks.pt"] = { "(", 100000 },
      ["deep_tuples.pt"] = { "\x85", 100000 }, ["deep_dicts.pt"] = { "}", 30001 } }) do
      local _, n = read_bytes(dir .. "/" .. name):gsub(want[1]:gsub("%p", "%%%0"), "")
      assert(n >= want[2], name .. " holds only " .. n .. " nesting opcodes")
    end
  end)

  for _, c in ipairs(cases) do
    local name = c[1]
    it(name .. ": a clear error naming the file and the problem, in under 2 s (copying and mmap)", function()
      assert(not setup_err, setup_err)
      local path = dir .. "/" .. name
      for _, opts in ipairs({ {}, { mmap = true } }) do
        local t0 = wall()
        local ok, err = pcall(torch.load, path, opts)
        local dt = wall() - t0
        assert(not ok, name .. " loaded without an error" .. (opts.mmap and " (mmap)" or ""))
        assert(type(err) == "string", "the error is not a string: " .. tostring(err))
        check_message(err, "moontorch.load", path, c)
        assert(dt < 2, string.format("%s took %.2f s", name, dt))
      end
      assert.are.same({}, pwned())
    end)
  end

  it("the same bytes in memory: torch.deserialize names serialized data", function()
    assert(not setup_err, setup_err)
    for _, c in ipairs(cases) do
      if c[1]:match("%.pt$") then
        local ok, err = pcall(torch.deserialize, read_bytes(dir .. "/" .. c[1]))
        assert(not ok, c[1] .. " deserialized without an error")
        assert(tostring(err):find("moontorch.deserialize", 1, true), tostring(err))
        assert(tostring(err):find("serialized data", 1, true), tostring(err))
      end
    end
    assert.are.same({}, pwned())
  end)

  it("no payload ran and no file appeared beside the bad ones", function()
    assert(not setup_err, setup_err)
    assert.are.same({}, pwned())
    local n = 0
    for _ in ipairs(listdir(dir)) do n = n + 1 end
    assert.are.equal(#cases + 2, n) -- the cases, good.pt and good.safetensors; nothing extracted
  end)

  it("every file fails within its size + 64 MB of memory (peak RSS of a child per file)", function()
    assert(not setup_err, setup_err)
    -- ASan's shadow memory and quarantine make RSS meaningless under make test-sanitize.
    if os.getenv("MOONTORCH_SANITIZE") then
      pending("skipped under the sanitizers (RSS includes ASan's shadow memory); ASan checks the loads instead")
    end
    -- Each child loads its file twice (copying, then mapped), then prints its VmHWM; the child
    -- for "" only requires moontorch and is the baseline (the smallest of three runs).
    local code = [[
      local torch = require "moontorch"
      local path = os.getenv("BAD_FILE")
      collectgarbage()
      if path ~= "" then
        for _, opts in ipairs({ {}, { mmap = true } }) do
          local ok = pcall(torch.load, path, opts)
          if ok then io.write("LOADED ") end
        end
      end
      for l in io.lines("/proc/self/status") do
        local kb = l:match("^VmHWM:%s*(%d+) kB")
        if kb then io.write(kb, "\n") end
      end
    ]]
    local names = { "", "", "" }
    for _, c in ipairs(cases) do names[#names + 1] = c[1] end
    local script = { "for f in" }
    for _, n in ipairs(names) do script[#script + 1] = H.shquote(n) end
    script[#script + 1] = "; do if [ -n \"$f\" ]; then p=\"$BAD_DIR/$f\"; else p=; fi; " ..
        "printf '%s\\t' \"$f\"; BAD_FILE=\"$p\" OPENBLAS_NUM_THREADS=1 lua5.4 -e \"$BAD_CODE\" || echo DIED; done"
    local ok, out = H.sh("BAD_DIR=" .. H.shquote(dir) .. " BAD_CODE=" .. H.shquote(code) .. " sh -c " ..
      H.shquote(table.concat(script, " ")))
    assert(ok, out:sub(-2000))
    local baseline, peaks = math.huge, {}
    for name, rest in out:gmatch("([^\t\n]*)\t([^\n]*)\n") do
      local kb = rest:match("^(%d+)$")
      assert(kb, (name == "" and "the baseline child" or name) .. ": " .. rest)
      if name == "" then baseline = math.min(baseline, tonumber(kb)) else peaks[name] = tonumber(kb) end
    end
    assert(baseline < math.huge, "no baseline measured:\n" .. out:sub(-2000))
    local worst, worst_name = -math.huge, nil
    for _, c in ipairs(cases) do
      local kb = peaks[c[1]]
      assert(kb, c[1] .. " was not measured")
      local f = assert(io.open(dir .. "/" .. c[1], "rb"))
      local size = f:seek("end")
      f:close()
      local grew = (kb - baseline) * 1024
      assert(grew <= size + 64 * 1024 * 1024, string.format("%s (%d bytes) raised the peak RSS by %.1f MB",
        c[1], size, grew / 2 ^ 20))
      if grew - size > worst then worst, worst_name = grew - size, c[1] end
    end
    -- the largest excess over the file's size, for the log
    print(string.format("\n  bad files: baseline peak RSS %.1f MB; largest growth beyond the file's size: %.2f MB (%s)",
      baseline / 1024, worst / 2 ^ 20, worst_name))
  end)

  it("every file fails the same way in a child process limited to 1.5 GB of address space", function()
    assert(not setup_err, setup_err)
    local names = {}
    for i, c in ipairs(cases) do names[i] = c[1] end
    local code = [[
      local torch = require "moontorch"
      local dir = ... or os.getenv("BAD_DIR")
      for name in os.getenv("BAD_NAMES"):gmatch("[^,]+") do
        for _, opts in ipairs({ {}, { mmap = true } }) do
          local ok, err = pcall(torch.load, dir .. "/" .. name, opts)
          io.write(name, "\t", ok and "LOADED" or "ERROR", "\t", tostring(err):gsub("\n", " "), "\n")
        end
      end
      io.write("DONE\n")
    ]]
    -- AddressSanitizer reserves terabytes of address space for its shadow memory, so under
    -- `make test-sanitize` the child runs without the limit (and is checked by ASan instead).
    local limit = os.getenv("MOONTORCH_SANITIZE") and "" or "ulimit -v 1500000; "
    local cmd = limit .. "BAD_DIR=" .. H.shquote(dir) .. " BAD_NAMES=" .. H.shquote(table.concat(names, ",")) ..
        " OPENBLAS_NUM_THREADS=1 lua5.4 -e " .. H.shquote(code) .. " 2>&1"
    local p = assert(io.popen("sh -c " .. H.shquote(cmd)))
    local out = p:read("a")
    local ok, how, code_ = p:close()
    assert(ok, "the child died (" .. tostring(how) .. " " .. tostring(code_) .. "):\n" .. out:sub(-2000))
    assert(out:find("DONE\n", 1, true), out:sub(-2000))
    local by_name = {}
    for _, c in ipairs(cases) do by_name[c[1]] = c end
    local n = 0
    for name, status, msg in out:gmatch("([^\t\n]+)\t(%u+)\t([^\n]*)\n") do
      n = n + 1
      assert(status == "ERROR", name .. " loaded in the child")
      assert(not msg:lower():find("out of memory", 1, true), name .. " ran out of memory: " .. msg)
      check_message(msg, "moontorch.load", dir .. "/" .. name, by_name[name])
    end
    assert.are.equal(2 * #cases, n)
  end)
end)
