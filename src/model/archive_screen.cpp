#include "archive_screen.hpp"

#include <caffe2/serialize/read_adapter_interface.h>
#include <caffe2/serialize/inline_container.h>

#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <tuple>
#include <vector>

#include "airm/error.hpp"

namespace airm {
namespace {

// Bytes of an opcode's argument, or a kind of argument the walker reads itself.
enum class Arg { kNone, kFixed, kLine, kTwoLines, kLength, kMemo, kFrame };

struct OpInfo {
  Arg arg = Arg::kNone;
  int width = 0;  // kFixed/kMemo: bytes of the argument; kLength: bytes of the length prefix
  bool known = false;
};

OpInfo op_info(unsigned char op) {
  switch (op) {
    // No argument.
    case '(': case '.': case '0': case '1': case '2': case 'N': case 'Q': case 'R': case 'a': case 'b':
    case 'd': case '}': case 'e': case 'l': case ']': case 'o': case 's': case 't': case ')': case 'u':
    case 0x81: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8f: case 0x90: case 0x91:
    case 0x92: case 0x93: case 0x94:
      return {Arg::kNone, 0, true};
    case 0x80: case 'K': case 'h': case 0x82: return {Arg::kFixed, 1, true};  // PROTO BININT1 BINGET EXT1
    case 'M': case 0x83: return {Arg::kFixed, 2, true};                        // BININT2 EXT2
    case 'J': case 'j': case 0x84: return {Arg::kFixed, 4, true};              // BININT LONG_BINGET EXT4
    case 'G': return {Arg::kFixed, 8, true};                                   // BINFLOAT
    case 'q': return {Arg::kMemo, 1, true};                                    // BINPUT
    case 'r': return {Arg::kMemo, 4, true};                                    // LONG_BINPUT
    case 'p': return {Arg::kLine, 0, true};                                    // PUT (decimal id)
    case 'F': case 'I': case 'L': case 'P': case 'S': case 'V': case 'g':
      return {Arg::kLine, 0, true};
    case 'c': case 'i': return {Arg::kTwoLines, 0, true};                      // GLOBAL INST
    case 'U': case 'C': case 0x8c: case 0x8a: return {Arg::kLength, 1, true};  // short strings, LONG1
    case 'T': case 'B': case 'X': case 0x8b: return {Arg::kLength, 4, true};   // strings, bytes, LONG4
    case 0x8d: case 0x8e: case 0x96: return {Arg::kLength, 8, true};           // 8-byte lengths
    case 0x95: return {Arg::kFrame, 8, true};                                  // FRAME
    default: return {};
  }
}

uint64_t little_endian(const unsigned char* p, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

std::string hex(unsigned char op) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[op >> 4] + digits[op & 15];
}


// The zip half: the central directory's records must lie inside the file with the sizes they claim.
void screen_zip(const std::string& source, const unsigned char* bytes, std::size_t size) {
  auto fail = [&](const std::string& what) {
    throw Error(source, "a corrupt or hostile zip archive (" + what + "); refused before LibTorch's reader reads it");
  };
  auto at = [&](uint64_t offset, int width) { return little_endian(bytes + offset, width); };
  if (size < 22) fail("too short for a zip archive");
  std::size_t eocd = size - 22;
  const std::size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  while (at(eocd, 4) != 0x06054b50) {
    if (eocd == lowest) fail("no end-of-central-directory record");
    --eocd;
  }
  uint64_t entries = at(eocd + 10, 2);
  uint64_t directory_size = at(eocd + 12, 4);
  uint64_t directory = at(eocd + 16, 4);
  if (entries == 0xFFFF || directory_size == 0xFFFFFFFF || directory == 0xFFFFFFFF) {  // zip64
    if (eocd < 20 || at(eocd - 20, 4) != 0x07064b50) fail("a zip64 archive without its locator");
    const uint64_t record = at(eocd - 20 + 8, 8);
    if (record > size || size - record < 56 || at(record, 4) != 0x06064b50) fail("a zip64 end record outside the file");
    entries = at(record + 32, 8);
    directory_size = at(record + 40, 8);
    directory = at(record + 48, 8);
  }
  if (directory > size || directory_size > size - directory) fail("a central directory outside the file");
  if (entries > directory_size / 46) fail(std::to_string(entries) + " records in a central directory of " +
                                          std::to_string(directory_size) + " bytes");
  uint64_t pos = directory;
  const uint64_t end = directory + directory_size;
  for (uint64_t i = 0; i < entries; ++i) {
    if (end - pos < 46 || at(pos, 4) != 0x02014b50) fail("central directory record " + std::to_string(i) + " is broken");
    const uint64_t method = at(pos + 10, 2);
    uint64_t packed = at(pos + 20, 4);
    uint64_t unpacked = at(pos + 24, 4);
    const uint64_t name_length = at(pos + 28, 2);
    const uint64_t extra_length = at(pos + 30, 2);
    const uint64_t comment_length = at(pos + 32, 2);
    uint64_t local = at(pos + 42, 4);
    const uint64_t record_end = pos + 46 + name_length + extra_length + comment_length;
    if (record_end > end) fail("central directory record " + std::to_string(i) + " runs past the directory");
    // Zip64 sizes and offsets sit in extra field 0x0001, in this order, for the fields that read 0xFFFFFFFF.
    for (uint64_t e = pos + 46 + name_length; e + 4 <= pos + 46 + name_length + extra_length;) {
      const uint64_t id = at(e, 2);
      const uint64_t length = at(e + 2, 2);
      if (e + 4 + length > pos + 46 + name_length + extra_length) fail("an extra field past its record");
      if (id == 1) {
        uint64_t field = e + 4;
        for (uint64_t* value : {&unpacked, &packed, &local}) {
          if (*value != 0xFFFFFFFF) continue;
          if (field + 8 > e + 4 + length) fail("a short zip64 extra field");
          *value = at(field, 8);
          field += 8;
        }
      }
      e += 4 + length;
    }
    const std::string name(reinterpret_cast<const char*>(bytes + pos + 46), name_length);
    if (local > size || size - local < 30 || at(local, 4) != 0x04034b50) fail("record " + name + " has no local header");
    const uint64_t data = local + 30 + at(local + 26, 2) + at(local + 28, 2);
    if (data > size || packed > size - data) fail("record " + name + " runs past the end of the file");
    if (method == 0 && unpacked != packed) {
      fail("stored record " + name + " claims " + std::to_string(unpacked) + " bytes in " + std::to_string(packed));
    }
    if (method == 8 && unpacked / 1032 > packed) {  // deflate cannot expand more than about 1032 times
      fail("record " + name + " claims " + std::to_string(unpacked) + " bytes from " + std::to_string(packed));
    }
    if (method != 0 && method != 8) fail("record " + name + " uses compression method " + std::to_string(method));
    pos = record_end;
  }
}

// What an opcode does to the unpickler's stack: pops `pop` items (kToMark: every item above the newest
// mark, and the mark), then pushes `push`. LibTorch 1.13 does not check that the items are there
// (fuzz_weights: a TUPLE3 over one item made it free memory it never allocated).
constexpr int kToMark = -1;
struct StackEffect {
  int pop = 0;
  int push = 0;
};

StackEffect stack_effect(unsigned char op) {
  switch (op) {
    case 0x80: case 0x95: case '(': return {0, 0};                                  // PROTO FRAME MARK
    case '.': case '0': return {1, 0};                                              // STOP POP
    case '1': return {kToMark, 0};                                                  // POP_MARK
    case '2': return {1, 2};                                                        // DUP
    case 'q': case 'r': case 'p': case 0x94: return {1, 1};                         // PUT, MEMOIZE
    case 'Q': return {1, 1};                                                        // BINPERSID
    case 'R': case 0x81: case 'b': case 0x93: return {2, 1};                        // REDUCE NEWOBJ BUILD STACK_GLOBAL
    case 0x92: return {3, 1};                                                       // NEWOBJ_EX
    case 'a': return {2, 1};                                                        // APPEND
    case 's': return {3, 1};                                                        // SETITEM
    case 'e': case 'u': case 0x90: return {kToMark, 0};                             // APPENDS SETITEMS ADDITEMS
    case 'd': case 'l': case 't': case 0x91: case 'i': case 'o': return {kToMark, 1};  // DICT LIST TUPLE FROZENSET INST OBJ
    case 0x85: return {1, 1};                                                       // TUPLE1
    case 0x86: return {2, 1};                                                       // TUPLE2
    case 0x87: return {3, 1};                                                       // TUPLE3
    default: return {0, 1};                                                         // every push of a value
  }
}

}  // namespace

void screen_pickle(const std::string& source, std::string_view pickle) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(pickle.data());
  const std::size_t size = pickle.size();
  std::size_t pos = 0;
  uint64_t memo_entries = 0;  // pickle writers number memo entries 0, 1, 2, ... as they write them
  std::size_t depth = 0;          // items on the unpickler's stack
  std::vector<std::size_t> marks;  // the depth at each open MARK
  auto fail = [&](const std::string& what) {
    throw Error(source, "a corrupt or hostile pickle (" + what + " at byte " + std::to_string(pos) +
                            " of data.pkl); refused before LibTorch's unpickler reads it");
  };
  auto need = [&](uint64_t n, const char* what) {
    if (n > size - pos) fail(std::string(what) + " runs past the end");
  };
  auto put = [&](uint64_t index) {  // a memo entry written: the next unused index or an earlier one
    if (index > memo_entries) {
      fail("memo index " + std::to_string(index) + " after " + std::to_string(memo_entries) + " memo entries");
    }
    memo_entries = std::max(memo_entries, index + 1);
  };
  auto skip_line = [&] {
    const std::size_t end = pickle.find('\n', pos);
    if (end == std::string_view::npos) fail("an unterminated text argument");
    const std::string_view line = pickle.substr(pos, end - pos);
    pos = end + 1;
    return line;
  };
  while (pos < size) {
    const unsigned char op = bytes[pos];
    const OpInfo info = op_info(op);
    if (!info.known) fail("opcode " + hex(op) + ", which LibTorch does not read");
    // The stack, as depths: items below the newest mark belong to the frame the unpickler returns to.
    const StackEffect effect = stack_effect(op);
    const std::size_t floor = marks.empty() ? 0 : marks.back();
    if (effect.pop == kToMark) {
      if (marks.empty()) fail("opcode " + hex(op) + " with no mark");
      depth = marks.back();
      marks.pop_back();
      // APPENDS, SETITEMS and ADDITEMS add to the container just below the mark.
      if ((op == 'e' || op == 'u' || op == 0x90) && depth <= (marks.empty() ? 0 : marks.back())) {
        fail("opcode " + hex(op) + " with no container below its mark");
      }
    } else {
      if (depth < floor + static_cast<std::size_t>(effect.pop)) {
        fail("opcode " + hex(op) + " popping " + std::to_string(effect.pop) + " items from a stack of " +
             std::to_string(depth - floor));
      }
      depth -= static_cast<std::size_t>(effect.pop);
    }
    depth += static_cast<std::size_t>(effect.push);
    if (op == '(') marks.push_back(depth);
    ++pos;
    if (op == '.') return;  // STOP: the unpickler reads nothing after it
    switch (info.arg) {
      case Arg::kNone:
        if (op == 0x94) ++memo_entries;  // MEMOIZE
        break;
      case Arg::kFixed:
        need(info.width, "an argument");
        if ((op == 'h' || op == 'j') && little_endian(bytes + pos, info.width) >= memo_entries) {
          fail("memo index " + std::to_string(little_endian(bytes + pos, info.width)) + " read before it was written");
        }
        pos += info.width;
        break;
      case Arg::kMemo: {
        need(info.width, "a memo index");
        put(little_endian(bytes + pos, info.width));
        pos += info.width;
        break;
      }
      case Arg::kLine: {
        const std::string_view line = skip_line();
        if (op == 'p') {  // PUT: a decimal memo index
          uint64_t index = 0;
          for (char c : line) {
            if (c < '0' || c > '9' || index > size) fail("a bad PUT index");
            index = index * 10 + static_cast<uint64_t>(c - '0');
          }
          put(index);
        }
        break;
      }
      case Arg::kTwoLines:
        skip_line();
        skip_line();
        break;
      case Arg::kLength: {
        need(info.width, "a length");
        uint64_t length = little_endian(bytes + pos, info.width);
        if (op == 'T' && (length & 0x80000000u)) fail("a negative string length");  // BINSTRING is signed
        pos += info.width;
        need(length, "a string or number");
        pos += length;
        break;
      }
      case Arg::kFrame:
        need(info.width, "a frame length");
        if (little_endian(bytes + pos, info.width) > size - pos - info.width) fail("a frame that runs past the end");
        pos += info.width;
        break;
    }
  }
  fail("no STOP opcode");
}

namespace {

// LibTorch's MemoryReadAdapter copies whatever position miniz asks for; miniz computes some positions from
// the archive's own numbers (fuzz_weights: a read at offset -1). This one copies only what lies in the file.
class BoundedReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  BoundedReadAdapter(const char* data, std::size_t size) : data_(data), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/ = "") const override {
    if (pos >= size_) return 0;
    n = std::min<uint64_t>(n, size_ - pos);
    std::memcpy(buf, data_ + pos, n);
    return n;
  }

 private:
  const char* data_;
  std::size_t size_;
};

// Runs `read`, turning LibTorch's errors into airm::Error naming `source` (c10::Error messages carry a long
// backtrace: the first line is kept).
template <class Read>
void with_named_errors(const std::string& source, Read&& read) {
  try {
    read();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw Error(source, "not a readable torch.save file (truncated or corrupt?): " + what.substr(0, what.find('\n')));
  }
}

// A screened archive, open: LibTorch's reader over it and data.pkl's bytes.
struct OpenArchive {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  at::DataPtr pickle;
  std::size_t pickle_size = 0;
};

OpenArchive open_screened(const std::string& source, const char* archive, std::size_t size) {
  screen_zip(source, reinterpret_cast<const unsigned char*>(archive), size);
  OpenArchive open;
  with_named_errors(source, [&] {
    open.reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<BoundedReadAdapter>(archive, size));
    if (!open.reader->hasRecord("data.pkl")) throw Error(source, "a torch.save archive with a data.pkl record", "none");
    std::tie(open.pickle, open.pickle_size) = open.reader->getRecord("data.pkl");
  });
  screen_pickle(source, std::string_view(static_cast<const char*>(open.pickle.get()), open.pickle_size));
  return open;
}

}  // namespace

void screen_torch_archive(const std::string& source, const char* archive, std::size_t size) {
  (void)open_screened(source, archive, size);
}

TorchArchive read_torch_archive(const std::string& source, const std::vector<char>& bytes) {
  OpenArchive open = open_screened(source, bytes.data(), bytes.size());
  TorchArchive archive;
  with_named_errors(source, [&] {
    // What torch::pickle_load does (data.pkl, tensors under data/), with the records it reads counted.
    std::size_t done = 0;
    auto read = [&, data = static_cast<const char*>(open.pickle.get())](char* out, std::size_t n) {
      n = std::min(n, open.pickle_size - done);
      if (n > 0) std::memcpy(out, data + done, n);
      done += n;
      return n;
    };
    auto read_record = [&](const std::string& key) {
      auto [data, size] = open.reader->getRecord("data/" + key);
      archive.records[data.get()] = size;
      return std::move(data);
    };
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::nullopt);
    unpickler.set_version(open.reader->version());
    archive.value = unpickler.parse_ivalue();
  });
  return archive;
}

void check_archive_tensor(const std::string& source, const std::string& key, const torch::Tensor& tensor,
                          const TorchArchive& archive) {
  const std::string entry = "state dict entry '" + key + "'";
  if (tensor.layout() != torch::kStrided || !tensor.device().is_cpu() || !tensor.has_storage()) {
    throw Error(source, entry + " to be a dense CPU tensor", "another layout or device");
  }
  const std::size_t storage_bytes = tensor.storage().nbytes();
  std::size_t record_bytes = 0;
  if (storage_bytes > 0) {
    const auto record = archive.records.find(tensor.storage().data());
    if (record == archive.records.end()) throw Error(source, entry + " to be stored in a record of the archive", "none");
    record_bytes = record->second;
  }
  if (storage_bytes > record_bytes) {
    throw Error(source, entry + "'s storage to fit its record of " + std::to_string(record_bytes) + " bytes",
                "a storage of " + std::to_string(storage_bytes) + " bytes");
  }
  // The element index of the last element the tensor reaches: offset + sum((size - 1) * stride).
  int64_t last = tensor.storage_offset();
  constexpr int64_t kLimit = std::numeric_limits<int64_t>::max() / 32;
  if (last < 0 || last > kLimit) throw Error(source, entry + " has a storage offset of " + std::to_string(last));
  for (int64_t d = 0; d < tensor.dim(); ++d) {
    const int64_t size = tensor.size(d);
    const int64_t stride = tensor.stride(d);
    if (size < 0 || stride < 0) throw Error(source, entry + " has a negative size or stride");
    if (size == 0) return;  // no element to reach
    if (size > 1 && stride > 0) {
      if (size - 1 > (kLimit - last) / stride) throw Error(source, entry + " has sizes and strides that overflow");
      last += (size - 1) * stride;
    }
  }
  const int64_t reach = (last + 1) * static_cast<int64_t>(tensor.element_size());
  if (reach > static_cast<int64_t>(storage_bytes)) {
    std::ostringstream shape;
    shape << tensor.sizes();
    throw Error(source, entry + " to fit its storage of " + std::to_string(storage_bytes) + " bytes",
                "sizes " + shape.str() + " reaching byte " + std::to_string(reach));
  }
}

}  // namespace airm
