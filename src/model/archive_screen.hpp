// Screening a torch.save archive before LibTorch's unpickler sees it.
//
// LibTorch 1.13's unpickler trusts the numbers in the pickle: a memo index of 1.7e9 in one LONG_BINPUT
// makes it resize its memo table to 28 GB, a string length of 4e9 makes it allocate 4 GB before reading.
// Its zip reader allocates each record's size as the central directory states it. screen_torch_archive
// checks the zip structure first (every record inside the file, stored sizes that match, no compression
// ratio past deflate's limit), then walks data.pkl's opcodes without running them and refuses any length
// past the end of the pickle, any memo index no writer could have reached, and any opcode the unpickler
// does not read.
#pragma once

#include <torch/torch.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace airm {

// Throws airm::Error naming `source` when `archive` (the bytes of a torch.save zip) has a zip record that
// lies about its place or size, holds no data.pkl, or its pickle fails the screen above.
void screen_torch_archive(const std::string& source, const char* archive, std::size_t size);

// The pickle half of that screen, on data.pkl's bytes.
void screen_pickle(const std::string& source, std::string_view pickle);

// What LibTorch's unpickler made of an archive, and the size of every tensor record it read, by the
// address of the buffer it read it into (a storage's data pointer).
struct TorchArchive {
  torch::IValue value;
  std::map<const void*, std::size_t> records;
};

// screen_torch_archive, then LibTorch's unpickler over data.pkl with the records it asks for counted.
// LibTorch errors become airm::Error naming `source`.
TorchArchive read_torch_archive(const std::string& source, const std::vector<char>& bytes);

// The unpickler sizes a storage by the element count the pickle claims and sets a tensor's sizes, strides
// and offset without comparing them with it: a file can make a tensor that reads far past its record's
// buffer (fuzz_weights found it: an overflow in memcpy). Throws unless `tensor` (entry `key`) is a dense
// CPU tensor whose storage is a record of `archive` no larger than that record, and whose every element
// lies inside its storage. Nothing may touch a loaded tensor's data before this check.
void check_archive_tensor(const std::string& source, const std::string& key, const torch::Tensor& tensor,
                          const TorchArchive& archive);

}  // namespace airm
