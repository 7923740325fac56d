// DeepSynth instrument: plays 4 kHz blocks at the context's rate (linear interpolation) and
// records what it played (its output, and the stream sample it was at for each render quantum).
class StreamPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.inRate = options.processorOptions.inRate;
    this.step = this.inRate / sampleRate;   // input samples per output frame
    this.chunks = [];                        // {stream, start, data}
    this.offset = 0;                         // fractional read position in chunks[0]
    this.underruns = 0;                      // output frames with nothing to play
    this.playing = false;
    this.capture = null;                     // {out: Float32Array, pos: Float64Array, n}
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    if (msg.type === 'block') {
      this.chunks.push(msg);
      this.playing = true;
    } else if (msg.type === 'capture') {
      const frames = Math.ceil(msg.seconds * sampleRate);
      this.capture = {out: new Float32Array(frames), pos: new Float64Array(frames), n: 0};
    } else if (msg.type === 'read') {
      const c = this.capture;
      const result = c ? {out: c.out.slice(0, c.n), pos: c.pos.slice(0, c.n)} : null;
      this.port.postMessage({type: 'capture', result, underruns: this.underruns,
                             sampleRate});
    }
  }

  // The sample at fractional position `i` of the queued chunks (crossing into the next chunk),
  // or null if not yet received.
  sampleAt(i) {
    let k = 0;
    while (k < this.chunks.length && i >= this.chunks[k].data.length) {
      i -= this.chunks[k].data.length;
      k += 1;
    }
    return k < this.chunks.length ? this.chunks[k].data[i] : null;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const c = this.capture;
    for (let j = 0; j < out.length; j++) {
      let value = 0;
      let pos = NaN;
      if (this.chunks.length) {
        const i = Math.floor(this.offset);
        const a = this.sampleAt(i);
        const b = this.sampleAt(i + 1);
        if (a !== null && b !== null) {
          const frac = this.offset - i;
          value = a + (b - a) * frac;
          pos = this.chunks[0].start + this.offset;
          this.offset += this.step;
          while (this.chunks.length && this.offset >= this.chunks[0].data.length) {
            this.offset -= this.chunks[0].data.length;
            this.chunks.shift();
          }
        } else if (this.playing) {
          this.underruns += 1;
        }
      }
      out[j] = value;
      if (c && c.n < c.out.length) {
        c.out[c.n] = value;
        c.pos[c.n] = pos;
        c.n += 1;
      }
    }
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    return true;
  }
}

registerProcessor('stream-player', StreamPlayer);
