// callback.h: move-only callbacks that carry a color, and wrap().
//
// Contract
//   - Callback<R(Args...)> owns a callable. It is move-only, may be invoked
//     any number of times (fd and signal callbacks are), and stores callables
//     of up to kInlineBytes (with nothrow moves) without touching the heap.
//   - Every Callback has a color (32-bit, default 0). The runtime runs
//     callbacks of one color one at a time, in scheduling order, and may run
//     callbacks of different colors in parallel (see runtime.h).
//   - wrap(fn, args...) and wrap(color, fn, args...) bind arguments by value.
//     Extra arguments given at call time are appended after the bound ones,
//     so wrap(fn, a) converts to Callback<void(int)> when fn takes (A, int).
//     Binding a std::shared_ptr<T> as the object of a member function keeps
//     the object alive for as long as the callback exists:
//         wrap(self, &Conn::on_read)          // self is std::shared_ptr<Conn>
//     shared_ptr's counts are atomic, so this is safe across cores.
//   - A Callback may be created on one thread and run on another; it is not
//     itself safe to touch from two threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

namespace asmp {

using color_t = std::uint32_t;

template <class Sig>
class Callback;

template <class F, class... Bound>
struct Wrapped;

template <class T>
struct is_wrapped : std::false_type {};
template <class F, class... B>
struct is_wrapped<Wrapped<F, B...>> : std::true_type {};

template <class R, class... Args>
class Callback<R(Args...)> {
 public:
  // Room for a lambda capturing a shared_ptr, a few pointers and an int, so
  // that a Task (next pointer + Callback) fills exactly one cache line.
  static constexpr std::size_t kInlineBytes = 40;

  Callback() noexcept = default;
  Callback(std::nullptr_t) noexcept {}

  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, Callback> &&
             std::is_invocable_r_v<R, std::decay_t<F>&, Args...>)
  Callback(F&& f, color_t color = 0) : color_(color) {  // NOLINT: implicit by design
    using Fn = std::decay_t<F>;
    if constexpr (is_wrapped<Fn>::value) {
      if (color == 0) color_ = f.color;
    }
    if constexpr (fits_inline<Fn>()) {
      ::new (static_cast<void*>(buf_)) Fn(std::forward<F>(f));
      ops_ = &inline_ops<Fn>;
    } else {
      *reinterpret_cast<Fn**>(buf_) = new Fn(std::forward<F>(f));
      ops_ = &heap_ops<Fn>;
    }
  }

  Callback(Callback&& o) noexcept : ops_(o.ops_), color_(o.color_) {
    if (ops_) {
      ops_->move(o.buf_, buf_);
      o.ops_ = nullptr;
    }
  }

  Callback& operator=(Callback&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_;
      color_ = o.color_;
      if (ops_) {
        ops_->move(o.buf_, buf_);
        o.ops_ = nullptr;
      }
    }
    return *this;
  }

  Callback& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }

  Callback(const Callback&) = delete;
  Callback& operator=(const Callback&) = delete;
  ~Callback() { reset(); }

  R operator()(Args... args) { return ops_->invoke(buf_, std::forward<Args>(args)...); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  color_t color() const noexcept { return color_; }
  void set_color(color_t c) noexcept { color_ = c; }

  void reset() noexcept {
    if (ops_) {
      if (ops_->destroy) ops_->destroy(buf_);
      ops_ = nullptr;
    }
  }

 private:
  struct Ops {
    R (*invoke)(void*, Args&&...);
    void (*move)(void* from, void* to) noexcept;
    void (*destroy)(void*) noexcept;  // nullptr: trivially destructible
  };

  template <class Fn>
  static void destroy_inline(void* p) noexcept {
    static_cast<Fn*>(p)->~Fn();
  }

  // A Callback<void(...)> may hold a callable that returns a value: drop it.
  template <class Fn>
  static R invoke_as_r(Fn& fn, Args&&... a) {
    if constexpr (std::is_void_v<R>)
      std::invoke(fn, std::forward<Args>(a)...);
    else
      return std::invoke(fn, std::forward<Args>(a)...);
  }

  template <class Fn>
  static constexpr bool fits_inline() {
    return sizeof(Fn) <= kInlineBytes && alignof(Fn) <= 8 &&
           std::is_nothrow_move_constructible_v<Fn>;
  }

  template <class Fn>
  static constexpr Ops inline_ops = {
      [](void* p, Args&&... a) -> R {
        return invoke_as_r(*static_cast<Fn*>(p), std::forward<Args>(a)...);
      },
      [](void* from, void* to) noexcept {
        if constexpr (std::is_trivially_copyable_v<Fn> && sizeof(Fn) % 8 == 0) {
          // Word by word, the way the callable's fields were most likely
          // just stored: cpucb(Closure(...)) builds it on the caller's stack
          // right before push() moves it into a Task. Left alone, g++ merges
          // the copy into 16-byte loads that span two 8-byte stores still
          // in the store buffer; such a load cannot be forwarded and waits
          // for the stores to commit (about 1 ns of the ~13 ns a callback
          // costs, sched_bench --work-ns 0). The empty asm stops the merge.
          for (std::size_t i = 0; i < sizeof(Fn) / 8; ++i) {
            std::uint64_t word;
            std::memcpy(&word, static_cast<const unsigned char*>(from) + 8 * i, 8);
            asm volatile("" : "+r"(word));
            std::memcpy(static_cast<unsigned char*>(to) + 8 * i, &word, 8);
          }
        } else {
          ::new (to) Fn(std::move(*static_cast<Fn*>(from)));
          static_cast<Fn*>(from)->~Fn();
        }
      },
      std::is_trivially_destructible_v<Fn> ? nullptr : &destroy_inline<Fn>,
  };

  template <class Fn>
  static constexpr Ops heap_ops = {
      [](void* p, Args&&... a) -> R {
        return invoke_as_r(**static_cast<Fn**>(p), std::forward<Args>(a)...);
      },
      [](void* from, void* to) noexcept { *static_cast<Fn**>(to) = *static_cast<Fn**>(from); },
      [](void* p) noexcept { delete *static_cast<Fn**>(p); },
  };

  const Ops* ops_ = nullptr;
  color_t color_ = 0;
  alignas(8) unsigned char buf_[kInlineBytes];
};

using Closure = Callback<void()>;

// The object wrap() returns: a function, bound arguments and a color. It is
// callable with any trailing arguments and converts to any Callback whose
// signature it can serve, passing its color along.
template <class F, class... Bound>
struct Wrapped {
  color_t color;
  F fn;
  std::tuple<Bound...> bound;

  template <class... Rest>
  decltype(auto) operator()(Rest&&... rest) {
    return std::apply(
        [&](auto&... b) -> decltype(auto) {
          return std::invoke(fn, b..., std::forward<Rest>(rest)...);
        },
        bound);
  }
};

template <class F, class... A>
  requires(!std::is_integral_v<std::decay_t<F>>)
auto wrap(F&& fn, A&&... args) {
  return Wrapped<std::decay_t<F>, std::decay_t<A>...>{0, std::forward<F>(fn),
                                                      {std::forward<A>(args)...}};
}

template <class C, class F, class... A>
  requires std::is_integral_v<C>
auto wrap(C color, F&& fn, A&&... args) {
  return Wrapped<std::decay_t<F>, std::decay_t<A>...>{static_cast<color_t>(color),
                                                      std::forward<F>(fn),
                                                      {std::forward<A>(args)...}};
}

// wrap(obj, &T::method, args...) and wrap(color, obj, &T::method, args...):
// libasync's order, object first. obj is a pointer or a std::shared_ptr
// (which the callback then keeps alive); it becomes the first bound argument.
template <class O, class M, class... A>
  requires(!std::is_integral_v<std::decay_t<O>> &&
           std::is_member_function_pointer_v<std::decay_t<M>>)
auto wrap(O&& obj, M method, A&&... args) {
  return Wrapped<M, std::decay_t<O>, std::decay_t<A>...>{
      0, method, {std::forward<O>(obj), std::forward<A>(args)...}};
}

template <class C, class O, class M, class... A>
  requires(std::is_integral_v<C> && std::is_member_function_pointer_v<std::decay_t<M>>)
auto wrap(C color, O&& obj, M method, A&&... args) {
  return Wrapped<M, std::decay_t<O>, std::decay_t<A>...>{
      static_cast<color_t>(color), method, {std::forward<O>(obj), std::forward<A>(args)...}};
}

}  // namespace asmp
