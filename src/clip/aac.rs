//! Sound browsers do not play inside MP4 (AC-3, E-AC-3 and DTS, common in broadcast and disc
//! rips), re-encoded to AAC for a clip or a playable stretch, so that it does not play silent.
//! Decoded, turned into planar float stereo at its own rate (ffmpeg-next's resampler), cut into
//! the encoder's frames, and written from the clip's zero.

use ffmpeg::{codec, encoder, format, ChannelLayout, Packet, Rational};
use ffmpeg_next as ffmpeg;

/// Bits a second of the AAC track: plenty for stereo speech and music at a page's size.
const BIT_RATE: usize = 160_000;

pub struct Aac {
    decoder: ffmpeg::decoder::Audio,
    resampler: Option<ffmpeg::software::resampling::Context>,
    encoder: encoder::Audio,
    out_index: usize,
    rate: u32,
    /// Samples waiting for a whole encoder frame, per channel.
    waiting: [Vec<f32>; 2],
    /// The next sample's time on the clip's clock, in samples; set by the first one kept.
    next: Option<i64>,
}

impl Aac {
    /// Adds an AAC stream to `out` for audio of these parameters.
    pub fn add(
        out: &mut format::context::Output,
        parameters: codec::Parameters,
    ) -> Result<Aac, ffmpeg::Error> {
        let decoder = codec::context::Context::from_parameters(parameters)?
            .decoder()
            .audio()?;
        let rate = match decoder.rate() {
            0 => 48_000,
            rate => rate,
        };
        let aac = encoder::find(codec::Id::AAC).ok_or(ffmpeg::Error::EncoderNotFound)?;
        let mut setup = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()?;
        setup.set_rate(rate as i32);
        setup.set_channel_layout(ChannelLayout::STEREO);
        setup.set_channels(2);
        setup.set_format(format::Sample::F32(format::sample::Type::Planar));
        setup.set_bit_rate(BIT_RATE);
        setup.set_time_base(Rational(1, rate as i32));
        if out.format().flags().contains(format::Flags::GLOBAL_HEADER) {
            setup.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = setup.open_as(aac)?;
        let mut stream = out.add_stream(aac)?;
        stream.set_parameters(&encoder);
        stream.set_time_base(Rational(1, rate as i32));
        Ok(Aac {
            decoder,
            resampler: None,
            encoder,
            out_index: stream.index(),
            rate,
            waiting: [Vec::new(), Vec::new()],
            next: None,
        })
    }

    /// Takes a packet of the source's audio, `at` seconds after the clip's zero.
    pub fn push(
        &mut self,
        packet: &Packet,
        at: f64,
        out: &mut format::context::Output,
    ) -> Result<(), ffmpeg::Error> {
        if self.next.is_none() {
            self.next = Some((at.max(0.0) * f64::from(self.rate)).round() as i64);
        }
        // A damaged packet is skipped, as the decoders of the pictures skip theirs.
        if self.decoder.send_packet(packet).is_ok() {
            self.decoded(out)?;
        }
        Ok(())
    }

    /// Everything held back, encoded and written: the decoder's, the resampler's and the last
    /// part of a frame.
    pub fn finish(&mut self, out: &mut format::context::Output) -> Result<(), ffmpeg::Error> {
        if self.next.is_none() {
            return Ok(());
        }
        if self.decoder.send_eof().is_ok() {
            self.decoded(out)?;
        }
        self.flush_resampler();
        self.encode(out, true)?;
        self.encoder.send_eof()?;
        self.drain(out)
    }

    fn decoded(&mut self, out: &mut format::context::Output) -> Result<(), ffmpeg::Error> {
        let mut frame = ffmpeg::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if frame.channel_layout().is_empty() {
                frame.set_channel_layout(ChannelLayout::default(i32::from(frame.channels())));
            }
            // Broadcast sound switches between 5.1 and stereo at programme boundaries: a
            // resampler serves one input shape, so a new shape gets a new one.
            let shape = (frame.format(), frame.channel_layout(), frame.rate());
            let same = self.resampler.as_ref().is_some_and(|r| {
                let input = r.input();
                (input.format, input.channel_layout, input.rate) == shape
            });
            if !same {
                self.flush_resampler();
                self.resampler = Some(ffmpeg::software::resampling::Context::get(
                    shape.0,
                    shape.1,
                    shape.2,
                    format::Sample::F32(format::sample::Type::Planar),
                    ChannelLayout::STEREO,
                    self.rate,
                )?);
            }
            let mut stereo = ffmpeg::frame::Audio::empty();
            if let Some(resampler) = &mut self.resampler {
                resampler.run(&frame, &mut stereo)?;
            }
            self.keep(&stereo);
            self.encode(out, false)?;
        }
        Ok(())
    }

    /// What the resampler holds back, kept.
    fn flush_resampler(&mut self) {
        let Some(mut resampler) = self.resampler.take() else {
            return;
        };
        let mut flushed = ffmpeg::frame::Audio::empty();
        if resampler.flush(&mut flushed).is_ok() && flushed.samples() > 0 {
            self.keep(&flushed);
        }
    }

    fn keep(&mut self, stereo: &ffmpeg::frame::Audio) {
        let samples = stereo.samples();
        for (channel, waiting) in self.waiting.iter_mut().enumerate() {
            waiting.extend_from_slice(&stereo.plane::<f32>(channel)[..samples]);
        }
    }

    /// Sends every whole encoder frame waiting, and with `last` the rest too.
    fn encode(
        &mut self,
        out: &mut format::context::Output,
        last: bool,
    ) -> Result<(), ffmpeg::Error> {
        let size = match self.encoder.frame_size() {
            0 => 1024,
            size => size as usize,
        };
        while self.waiting[0].len() >= size || (last && !self.waiting[0].is_empty()) {
            let take = size.min(self.waiting[0].len());
            let mut frame = ffmpeg::frame::Audio::new(
                format::Sample::F32(format::sample::Type::Planar),
                take,
                ChannelLayout::STEREO,
            );
            frame.set_rate(self.rate);
            for (channel, waiting) in self.waiting.iter_mut().enumerate() {
                frame.plane_mut::<f32>(channel)[..take].copy_from_slice(&waiting[..take]);
                waiting.drain(..take);
            }
            let pts = self.next.unwrap_or(0);
            frame.set_pts(Some(pts));
            self.next = Some(pts + take as i64);
            self.encoder.send_frame(&frame)?;
            self.drain(out)?;
        }
        Ok(())
    }

    fn drain(&mut self, out: &mut format::context::Output) -> Result<(), ffmpeg::Error> {
        let out_base = out
            .stream(self.out_index)
            .map(|s| s.time_base())
            .ok_or(ffmpeg::Error::StreamNotFound)?;
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.out_index);
            packet.rescale_ts(Rational(1, self.rate as i32), out_base);
            packet.write_interleaved(out)?;
        }
        Ok(())
    }
}
