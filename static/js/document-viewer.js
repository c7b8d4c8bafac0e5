// The document viewer: a citation opens it at a page (?page=N); bring that page into view when
// the address has no #page-N of its own (the browser scrolls to one that has).

const cited = document.querySelector("[data-cited]");
if (cited && !window.location.hash) {
  cited.scrollIntoView({ block: "start" });
  cited.focus({ preventScroll: true });
}
