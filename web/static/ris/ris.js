// ris web UI: small progressive enhancements; every action also works as a plain form or link.
(function () {
  "use strict";

  // Calendar drag and drop: dropping an exam on a free slot posts the same move form as the
  // "Move" page, so the server applies the same checks (conflicts, opening hours).
  function setUpDragAndDrop() {
    var form = document.getElementById("dropform");
    if (!form) return;
    var dragged = null;
    document.querySelectorAll(".block[draggable=true]").forEach(function (block) {
      block.addEventListener("dragstart", function (event) {
        dragged = block;
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", block.dataset.moveUrl);
      });
    });
    document.querySelectorAll("a.slot").forEach(function (slot) {
      slot.addEventListener("dragover", function (event) {
        if (dragged) { event.preventDefault(); slot.classList.add("drop"); }
      });
      slot.addEventListener("dragleave", function () { slot.classList.remove("drop"); });
      slot.addEventListener("drop", function (event) {
        event.preventDefault();
        slot.classList.remove("drop");
        if (!dragged) return;
        var column = slot.closest(".cal-col");
        form.action = dragged.dataset.moveUrl;
        form.elements.station.value = column.dataset.station;
        form.elements.date.value = column.dataset.date;
        form.elements.time.value = slot.dataset.time;
        form.elements.duration_minutes.value = dragged.dataset.duration;
        form.submit();
      });
    });
  }

  // The catalogue import shows a progress indicator while the upload is processed.
  function setUpImportProgress() {
    var form = document.getElementById("import-form");
    if (!form) return;
    form.addEventListener("submit", function () {
      var progress = form.querySelector(".progress");
      if (progress) progress.hidden = false;
    });
  }

  // After a booking or a move the calendar opens on the exam: scroll it into the middle of the
  // view (the grid scrolls on its own, so the #anchor alone is not enough) and let it glow.
  function showHighlightedBlock() {
    var block = document.querySelector(".block.highlight");
    if (block) block.scrollIntoView({ block: "center", inline: "center" });
  }

  // A refused click's message (and a done note) pauses the live region it is in for a few
  // seconds, so that the next poll does not wipe it before it is read (templates/web/_live.html).
  function expireLivePauses() {
    document.querySelectorAll(".live-pause:not([data-expires])").forEach(function (el) {
      el.dataset.expires = "1";
      window.setTimeout(function () { el.classList.remove("live-pause"); }, 8000);
    });
  }

  document.addEventListener("htmx:afterSettle", function () {
    expireLivePauses();
    setUpDragAndDrop();  // a live calendar brought new blocks and slots
  });

  document.addEventListener("DOMContentLoaded", function () {
    showHighlightedBlock();
    setUpDragAndDrop();
    setUpImportProgress();
  });
})();
