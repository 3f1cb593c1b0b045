/* Bệnh Án: the patient's signing pad (templates/records/patient_sign.html).
   Needs static/vendor/signature_pad-5.1.4.umd.min.js loaded first (global SignaturePad).
   The form posts normally; this script fills its hidden inputs: strokes (signature_pad
   point groups as JSON), canvas, client_time, pointer, screen, tz_offset. */
(function () {
  'use strict';
  const form = document.getElementById('sign-form');
  const canvas = document.getElementById('pad');
  if (!form || !canvas || typeof window.SignaturePad !== 'function') return;
  const submit = document.getElementById('pad-submit');
  const clear = document.getElementById('pad-clear');
  const message = document.getElementById('pad-message');
  const pad = new window.SignaturePad(canvas, { minWidth: 0.8, maxWidth: 2.6, penColor: '#000' });
  document.documentElement.classList.add('js'); // shows the pad (hidden without a script)
  let pointer = '';
  let cssWidth = 0;

  const ratio = () => Math.max(window.devicePixelRatio || 1, 1);
  const set = (name, value) => {
    const input = form.elements.namedItem(name);
    if (input) input.value = value;
  };
  const say = (t) => { if (message) message.textContent = t; };
  function update() {
    if (submit) submit.disabled = pad.isEmpty();
    if (!pad.isEmpty()) say('');
  }

  // Backing store = CSS size × devicePixelRatio, so lines are sharp. Setting the size
  // clears the canvas, so the strokes are redrawn; when the pad's CSS width changed
  // (rotation), they are scaled with it so the signature keeps its place and the
  // coordinates match the size sent in "canvas".
  function resize() {
    const r = ratio();
    const w = canvas.offsetWidth;
    const h = canvas.offsetHeight;
    if (!w || !h) return;
    const bw = Math.round(w * r);
    const bh = Math.round(h * r);
    if (canvas.width === bw && canvas.height === bh) return; // e.g. URL bar shown/hidden
    const data = pad.toData();
    const k = cssWidth ? w / cssWidth : 1;
    if (k !== 1) {
      data.forEach((g) => g.points.forEach((p) => { p.x *= k; p.y *= k; }));
    }
    cssWidth = w;
    canvas.width = bw;
    canvas.height = bh;
    canvas.getContext('2d').scale(r, r);
    pad.clear();
    if (data.length) pad.fromData(data);
    update();
  }

  let timer = 0;
  const later = () => { clearTimeout(timer); timer = setTimeout(resize, 150); };
  window.addEventListener('resize', later);
  window.addEventListener('orientationchange', later);

  // The kind of pointer that drew the signature: mouse, pen or touch.
  const note = (type) => { if (!pointer) pointer = type; };
  canvas.addEventListener('pointerdown', (e) => note(e.pointerType || ''));
  canvas.addEventListener('touchstart', () => note('touch'), { passive: true });
  canvas.addEventListener('mousedown', () => note('mouse'));

  pad.addEventListener('endStroke', update);
  if (clear) {
    clear.addEventListener('click', () => {
      pad.clear();
      pointer = '';
      update();
    });
  }

  form.addEventListener('submit', (e) => {
    if (pad.isEmpty()) {
      e.preventDefault();
      say(form.getAttribute('data-msg-empty') || 'Please sign in the box first.');
      return;
    }
    if (form.getAttribute('data-sent')) { e.preventDefault(); return; }
    form.setAttribute('data-sent', '1');
    const now = new Date();
    set('strokes', JSON.stringify(pad.toData()));
    set('canvas', JSON.stringify({ w: canvas.offsetWidth, h: canvas.offsetHeight, ratio: window.devicePixelRatio || 1 }));
    set('client_time', now.toISOString());
    set('pointer', pointer);
    set('screen', `${screen.width}x${screen.height}@${window.devicePixelRatio || 1}`);
    set('tz_offset', String(now.getTimezoneOffset()));
    pad.off(); // no more strokes once sent
    // Disabled after the event, so a named submit button still goes with the form.
    if (submit) setTimeout(() => { submit.disabled = true; }, 0);
    if (clear) clear.disabled = true;
  });

  // Back from the next page (bfcache): allow signing again.
  window.addEventListener('pageshow', (e) => {
    if (!e.persisted) return;
    form.removeAttribute('data-sent');
    pad.on();
    if (clear) clear.disabled = false;
    update();
  });

  // A drawing sent back by the server (the form was refused for another reason):
  // redraw it, scaled to the pad as it is now.
  function restore() {
    const strokes = form.elements.namedItem('strokes');
    const size = form.elements.namedItem('canvas');
    if (!strokes || !strokes.value || !size || !size.value) return;
    try {
      const data = JSON.parse(strokes.value);
      const was = JSON.parse(size.value);
      const k = was.w ? canvas.offsetWidth / was.w : 1;
      data.forEach((g) => g.points.forEach((p) => { p.x *= k; p.y *= k; }));
      pad.fromData(data);
      const kind = form.elements.namedItem('pointer');
      pointer = kind ? kind.value : '';
    } catch (err) { pad.clear(); }
  }

  resize();
  restore();
  update();
})();
