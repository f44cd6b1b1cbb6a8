// The live status page `pipectl serve` answers at /: one self-contained HTML document (inline
// CSS and JavaScript, no external resource), written as tools/pipectl/status_page.html and
// compiled into the binary by embed_page.py. It polls /api/stats once a second and derives
// rates and the per-second hit ratio from consecutive answers, so the server keeps no history.
#pragma once

#include <string_view>

namespace pipectl {

std::string_view status_page_html();

}  // namespace pipectl
