// message_stream.h (internal): one connected, non-blocking Unix stream
// socket carrying length-prefixed agent messages (agent_proto.h), driven by
// fd callbacks under one color.
//
// Protocol of use
//   - Everything (start, send, close, the handlers) happens on the stream's
//     color; the owner (registry, agent) keeps all its state on that same
//     color, so no locks are needed anywhere in between.
//   - A frame header that announces a length out of bounds closes the
//     stream at once, before anything is allocated for the body; so does
//     end of stream in the middle of a frame. A peer cannot make the stream
//     hold more than one frame of input (64 KiB + a read chunk), nor more
//     than max_output bytes of output (a peer that stops reading is closed).
//   - A read callback handles a bounded number of reads, then gives the
//     worker back: one chatty peer cannot starve others on the same color.
//   - The close handler runs exactly once, whoever closed (peer, error,
//     close()), with a sentence saying why; no message is delivered after
//     it. The owner does its cleanup there and only there.
//   - Input bytes are wiped as they are consumed (the control socket
//     carries private keys); output frames marked secret are wiped once
//     written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "asmp/runtime.h"
#include "sfs/agent_proto.h"

namespace sfs::agent_detail {

class MessageStream : public std::enable_shared_from_this<MessageStream> {
 public:
  using MessageHandler = std::function<void(ByteSpan body)>;
  using CloseHandler = std::function<void(const std::string& why)>;

  static constexpr std::size_t kDefaultMaxOutput = 256 * 1024;

  // Takes ownership of fd (made non-blocking here).
  static std::shared_ptr<MessageStream> create(asmp::Runtime& rt, asmp::color_t color, int fd,
                                               std::size_t max_output = kDefaultMaxOutput);
  ~MessageStream();
  MessageStream(const MessageStream&) = delete;
  MessageStream& operator=(const MessageStream&) = delete;

  void start(MessageHandler on_message, CloseHandler on_close);
  // Frames and queues msg, writing at once what the socket takes.
  void send(const AgentMessage& msg);
  // Writes what the socket takes of msg now, then closes (a last word such
  // as REPLACED or a refusal; a peer that is not reading just misses it).
  void send_and_close(const AgentMessage& msg, const std::string& why);
  void close(const std::string& why);
  bool closed() const { return closed_; }

 private:
  MessageStream(asmp::Runtime& rt, asmp::color_t color, int fd, std::size_t max_output);
  void on_readable();
  void on_writable();
  bool parse();  // false once closed
  void queue(Bytes frame);
  void flush();

  asmp::Runtime& rt_;
  const asmp::color_t color_;
  int fd_;
  const std::size_t max_output_;
  MessageHandler on_message_;
  CloseHandler on_close_;
  bool started_ = false;
  bool closed_ = false;
  bool delivering_ = false;
  bool write_armed_ = false;

  Bytes in_;  // [0, in_len_) holds unparsed input
  std::size_t in_len_ = 0;
  Bytes out_;  // [out_off_, size) still to write
  std::size_t out_off_ = 0;
};

}  // namespace sfs::agent_detail
