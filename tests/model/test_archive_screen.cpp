// The screen that stands between weights files and LibTorch's zip reader and unpickler: real files pass,
// records and pickles that lie about their sizes are refused before anything is allocated for them.
#include <gtest/gtest.h>

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>

#include "../../src/model/archive_screen.hpp"
#include "airm/error.hpp"
#include "airm/model/state_dict.hpp"
#include "airm/model/weights.hpp"
#include "test_support.hpp"

namespace {

// A small torch.save archive as the project writes it.
std::string archive_bytes(const airm::test::TempDir& dir) {
  airm::TensorDict dict;
  dict["weight"] = torch::arange(12, torch::kFloat32).view({3, 4});
  dict["steps"] = torch::tensor({7}, torch::kInt64);
  airm::write_tensor_dict(dict, dir / "small.pt");
  return airm::test::read_bytes(dir / "small.pt");
}

std::string screen_error(const std::string& bytes) {
  return airm::test::error_message([&] { airm::screen_torch_archive("x.pt", bytes.data(), bytes.size()); });
}

// Offset of the central directory record of the entry whose name ends with `suffix`.
std::size_t central_record(const std::string& bytes, const std::string& suffix) {
  for (std::size_t pos = bytes.find("PK\x01\x02"); pos != std::string::npos; pos = bytes.find("PK\x01\x02", pos + 4)) {
    uint16_t name_length = 0;
    std::memcpy(&name_length, bytes.data() + pos + 28, 2);
    const std::string name = bytes.substr(pos + 46, name_length);
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return pos;
  }
  ADD_FAILURE() << "no central record for " << suffix;
  return 0;
}

}  // namespace

TEST(ArchiveScreen, FilesWeWritePass) {
  airm::test::TempDir dir;
  const std::string bytes = archive_bytes(dir);
  EXPECT_EQ(screen_error(bytes), "(no airm::Error)");
  EXPECT_TRUE(airm::read_tensor_dict(dir / "small.pt").at("weight").equal(torch::arange(12.0f).view({3, 4})));
}

TEST(ArchiveScreen, ShippedWeightsPass) {
  for (const char* name : {"airm.pt", "segmenter.pt"}) {
    const auto file = std::filesystem::path(AIRM_SOURCE_DIR) / "models" / name;
    ASSERT_TRUE(std::filesystem::exists(file)) << file;
    const std::string bytes = airm::test::read_bytes(file);
    EXPECT_EQ(screen_error(bytes), "(no airm::Error)") << name;
    EXPECT_FALSE(airm::read_tensor_dict(file).empty()) << name;
  }
}

TEST(ArchiveScreen, FuzzFoundMemoIndexIsRefusedBeforeAllocating) {
  // libFuzzer's input: one LONG_BINPUT with memo index 1,769,300,581 made the unpickler allocate 28 GB.
  const auto file = std::filesystem::path(AIRM_SOURCE_DIR) / "fuzz/regressions/fuzz_weights/memo_index_overflow";
  const std::string message = screen_error(airm::test::read_bytes(file));
  EXPECT_NE(message.find("memo index 1769300581"), std::string::npos) << message;
  EXPECT_NE(airm::test::error_message([&] { (void)airm::load_weights(file); }).find("memo index"), std::string::npos);
}

TEST(ArchiveScreen, RecordSizesThatLieAreRefused) {
  airm::test::TempDir dir;
  const std::string good = archive_bytes(dir);
  const std::size_t record = central_record(good, "data.pkl");

  std::string bytes = good;  // a stored record claiming more bytes than it holds
  const uint32_t huge = 0x7fffff00;
  std::memcpy(&bytes[record + 24], &huge, 4);
  EXPECT_NE(screen_error(bytes).find("claims 2147483392 bytes"), std::string::npos) << screen_error(bytes);

  bytes = good;  // a record placed past the end of the file
  const uint32_t far = static_cast<uint32_t>(good.size() + 100);
  std::memcpy(&bytes[record + 42], &far, 4);
  EXPECT_NE(screen_error(bytes).find("no local header"), std::string::npos) << screen_error(bytes);

  bytes = good;  // an unknown compression method
  bytes[record + 10] = 12;
  EXPECT_NE(screen_error(bytes).find("compression method 12"), std::string::npos) << screen_error(bytes);

  for (std::size_t cut : {good.size() / 2, good.size() - 10, std::size_t{21}}) {  // truncated archives
    EXPECT_NE(screen_error(good.substr(0, cut)).find("zip archive"), std::string::npos) << cut;
  }
}

TEST(ArchiveScreen, PicklesThatLieAreRefused) {
  using airm::screen_pickle;
  auto message = [](const std::string& pickle) {
    return airm::test::error_message([&] { screen_pickle("x.pt", pickle); });
  };
  // PROTO 2, EMPTY_DICT, BINPUT 0, STOP: fine.
  EXPECT_EQ(message(std::string("\x80\x02}q\x00.", 6)), "(no airm::Error)");
  // BINUNICODE of 4,000,000,000 bytes in a 12-byte pickle.
  EXPECT_NE(message(std::string("\x80\x02X\x00\x28\x6b\xee" "abc.", 11)).find("runs past the end"), std::string::npos);
  // BINBYTES8 and LONG4 the same.
  EXPECT_NE(message(std::string("\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.", 10)).find("runs past the end"), std::string::npos);
  EXPECT_NE(message(std::string("\x8b\x10\x00\x00\x00\x01.", 7)).find("runs past the end"), std::string::npos);
  // Memo indices: LONG_BINPUT 5 before any entry, PUT 99 as text.
  EXPECT_NE(message(std::string("}r\x05\x00\x00\x00.", 7)).find("memo index 5 after 0"), std::string::npos);
  EXPECT_NE(message("}p99\n."), "(no airm::Error)");
  EXPECT_EQ(message("}p0\n}p1\n."), "(no airm::Error)");
  // The stack: TUPLE3 over one item (fuzz_weights: LibTorch freed memory it never allocated), SETITEMS
  // with no dict below its mark, TUPLE with no mark, POP below the newest mark, BINGET of an unwritten memo.
  EXPECT_NE(message("\x80\x02}\x87.").find("popping 3 items from a stack of 1"), std::string::npos);
  EXPECT_NE(message("(K\x01K\x02u.").find("no container below its mark"), std::string::npos);
  EXPECT_NE(message("K\x01t.").find("with no mark"), std::string::npos);
  EXPECT_NE(message("K\x01(0.").find("popping 1 items from a stack of 0"), std::string::npos);
  EXPECT_NE(message("}h\x03.").find("memo index 3 read before it was written"), std::string::npos);
  EXPECT_EQ(message("}(K\x01K\x02u(K\x01t\x86."), "(no airm::Error)");
  // An opcode LibTorch does not read, a missing STOP, an unterminated GLOBAL.
  EXPECT_NE(message("}_.").find("opcode 0x5f"), std::string::npos);
  EXPECT_NE(message("}").find("no STOP"), std::string::npos);
  EXPECT_NE(message("ctorch\nFloat").find("unterminated"), std::string::npos);
}

namespace {

// small.pt with data.pkl's bytes `from` replaced by `to` (once), rewritten record by record with LibTorch's
// own writer, so every CRC holds.
std::string edited_pickle_archive(const airm::test::TempDir& dir, const std::string& from, const std::string& to) {
  const std::string good = archive_bytes(dir);
  caffe2::serialize::PyTorchStreamReader reader(
      std::make_shared<caffe2::serialize::MemoryReadAdapter>(good.data(), static_cast<off_t>(good.size())));
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    out.append(static_cast<const char*>(data), n);
    return n;
  });
  for (const std::string& name : reader.getAllRecords()) {
    if (name == "version" || name == ".data/version") continue;  // writeEndOfFile writes it
    auto [data, length] = reader.getRecord(name);
    std::string record(static_cast<const char*>(data.get()), length);
    if (name == "data.pkl") {
      const auto at = record.find(from);
      EXPECT_NE(at, std::string::npos) << "no such bytes in data.pkl";
      if (at != std::string::npos) record.replace(at, from.size(), to);
    }
    writer.writeRecord(name, record.data(), record.size());
  }
  writer.writeEndOfFile();
  return out;
}

std::string read_error(const airm::test::TempDir& dir, const std::string& bytes) {
  std::ofstream(dir / "edited.pt", std::ios::binary) << bytes;
  return airm::test::error_message([&] { (void)airm::read_tensor_dict(dir / "edited.pt"); });
}

}  // namespace

TEST(ArchiveScreen, TensorsPastTheirRecordsAreRefused) {
  // LibTorch's unpickler sizes a storage by the element count in the pickle and takes a tensor's sizes
  // from it too, comparing neither with the record it read (fuzz_weights: an overflow in memcpy).
  airm::test::TempDir dir;
  // LibTorch's pickler writes sizes as MARK, BININT1..., TUPLE and a storage's persistent id as
  // (MARK 'storage', GLOBAL, key, 'cpu', numel) TUPLE BINPERSID.
  // The weight (3, 4) rewritten as (200, 4): 3,200 bytes read from a 48-byte storage.
  std::string message = read_error(dir, edited_pickle_archive(dir, std::string("(K\x03K\x04t", 6),
                                                              std::string("(K\xc8K\x04t", 6)));
  EXPECT_NE(message.find("'weight' to fit its storage of 48 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("reaching byte 3200"), std::string::npos) << message;
  // The storage of 12 floats claimed as 200: a 800-byte storage over a 48-byte record.
  message = read_error(dir, edited_pickle_archive(dir, std::string("K\x0ctQ", 4), std::string("K\xc8tQ", 4)));
  EXPECT_NE(message.find("storage to fit its record of 48 bytes"), std::string::npos) << message;
  // Unedited through the same writer: read as written.
  EXPECT_EQ(read_error(dir, edited_pickle_archive(dir, "storage", "storage")), "(no airm::Error)");
}

