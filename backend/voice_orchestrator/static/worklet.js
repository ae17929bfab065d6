// Captures the microphone at the context's rate and posts 20-ms frames of 16 kHz PCM s16le.
// Each output sample is the mean of the input samples it covers (a box filter against aliasing).
class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.targetRate = (options.processorOptions && options.processorOptions.targetRate) || 16000;
    this.step = sampleRate / this.targetRate;  // input samples per output sample
    this.frame = new Int16Array(this.targetRate / 50);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.position = 0;  // input samples consumed towards the next output sample
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.sum += channel[i];
      this.count += 1;
      this.position += 1;
      if (this.position >= this.step) {
        this.position -= this.step;
        const value = Math.max(-1, Math.min(1, this.sum / this.count));
        this.frame[this.filled++] = value < 0 ? value * 0x8000 : value * 0x7fff;
        this.sum = 0;
        this.count = 0;
        if (this.filled === this.frame.length) {
          const out = this.frame.slice().buffer;
          this.port.postMessage(out, [out]);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
