// PIPECACHE_API marks what libpipecache.so exports. The library is built with
// -fvisibility=hidden (lib/meson.build): every class and function of the public headers carries
// this mark, everything under lib/src stays internal to the library, so the dynamic symbol table
// is the public API and nothing else (a program cannot come to depend on an internal symbol, and
// internal calls bind locally without going through the PLT).
//
// Classes are marked whole: their member functions, vtables and type_info (pipecache::Error is
// caught by type across the library boundary) are exported. Plain structs whose members are all
// inline need no mark. The static library (libpipecache.a) is unaffected.
#pragma once

#define PIPECACHE_API __attribute__((visibility("default")))

// For a class nested in an exported one but defined only inside the library (the Impl of a
// pimpl): without it, its members would inherit the enclosing class's default visibility.
#define PIPECACHE_LOCAL __attribute__((visibility("hidden")))
